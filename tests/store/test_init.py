"""open_store picks the implementation from the config's store URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from healthd.errors import ConfigError
from healthd.store import MemoryStore, SQLiteStore, open_store


def test_memory_url_gives_a_memory_store() -> None:
    assert isinstance(open_store("memory:"), MemoryStore)


def test_sqlite_url_with_three_slashes_names_an_absolute_file() -> None:
    store = open_store("sqlite:///var/lib/healthd/state.db")

    assert isinstance(store, SQLiteStore)
    assert store.path == Path("/var/lib/healthd/state.db")


def test_bare_path_ending_in_db_gives_a_sqlite_store() -> None:
    store = open_store("data/healthd.db")

    assert isinstance(store, SQLiteStore)
    assert store.path == Path("data/healthd.db")


@pytest.mark.parametrize("url", ["postgres://db/healthd", "healthd.sqlite", "sqlite://", ""])
def test_unsupported_url_is_a_config_error_on_the_store_key(url: str) -> None:
    with pytest.raises(ConfigError) as raised:
        open_store(url)

    assert raised.value.path == "store"

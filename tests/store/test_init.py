"""open_store picks the implementation from the config's store URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from healthd.errors import ConfigError
from healthd.store import MemoryStore, PostgresStore, SQLiteStore, open_store


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


@pytest.mark.parametrize("url", ["mysql://db/healthd", "healthd.sqlite", "sqlite://", ""])
def test_unsupported_url_is_a_config_error_on_the_store_key(url: str) -> None:
    with pytest.raises(ConfigError) as raised:
        open_store(url)

    assert raised.value.path == "store"


def test_postgresql_url_gives_a_postgres_store_labelled_without_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HEALTHD_TEST_PG_PASSWORD", "pg-secret-marker")

    store = open_store(
        "postgresql://healthd@db.internal:6543/fleet?password=env:HEALTHD_TEST_PG_PASSWORD"
    )

    assert isinstance(store, PostgresStore)
    assert store.label == "postgresql store db.internal:6543/fleet"
    assert "pg-secret-marker" not in repr(vars(store))


def test_a_literal_password_in_a_postgresql_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as raised:
        open_store("postgresql://healthd:hunter2@db/healthd")

    assert raised.value.path == "store"
    assert "?password=env:NAME" in raised.value.message
    assert "hunter2" not in str(raised.value)


def test_a_postgresql_password_reference_that_does_not_resolve_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="store: password: environment variable 'NO_SUCH_PG_VAR'"):
        open_store("postgresql://healthd@db/healthd?password=env:NO_SUCH_PG_VAR")

"""The SQLite file under a running store: deleted, it is written again; replaced, refused."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from healthd.errors import StoreError
from healthd.model import AlertEvent, EventAction, Incident
from healthd.store import SQLiteStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KEY = "healthd/bridge_unreachable/bridge-dc1"


async def _open_page(store: SQLiteStore) -> None:
    event = AlertEvent(
        rule="bridge_unreachable",
        action=EventAction.TRIGGER,
        dedup_key=KEY,
        summary="s",
        source="x",
    )
    incident = Incident(dedup_key=KEY, rule="bridge_unreachable", summary="s", opened_at=T0)
    await store.apply_alerts(opened=[incident], resolved=[], events=[("pagerduty", event)], now=T0)


def _delete(path: Path) -> None:
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        name.unlink(missing_ok=True)


async def test_a_deleted_file_is_written_again_with_its_open_incidents_and_queued_events(
    tmp_path: Path,
) -> None:
    path = tmp_path / "healthd.db"
    store = SQLiteStore(path)
    await store.open()
    await _open_page(store)
    _delete(path)

    assert [i.dedup_key for i in await store.open_incidents()] == [KEY]
    await store.close()
    assert path.exists() and store.recreated == 1

    again = SQLiteStore(path)  # a restart
    await again.open()
    try:
        assert [i.dedup_key for i in await again.open_incidents()] == [KEY]
        assert await again.outbox_pending() == {"pagerduty": 1}
    finally:
        await again.close()


async def test_a_replaced_file_is_refused_naming_the_file_until_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "healthd.db"
    store = SQLiteStore(path)
    await store.open()
    try:
        await _open_page(store)
        other = tmp_path / "other.db"
        other.write_bytes(b"")
        os.replace(other, path)
        with pytest.raises(StoreError, match=f"{path}.*replaced"):
            await store.open_incidents()
    finally:
        await store.close()
    assert path.stat().st_size == 0  # the new file was not written into

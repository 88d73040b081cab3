"""What only the SQLite store promises: durability, WAL, errors that name the file, no blocking."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from healthd.errors import StoreError
from healthd.model import IntegrationState, ProbeResult, Status
from healthd.store import Retention, SQLiteStore
from healthd.store.sqlite import SCHEMA_VERSION
from tests._stores import T0, alert_event, open_incident, opening


@pytest.fixture
async def opened(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Opens SQLiteStores on demand and closes every one of them at the end."""
    async with opening() as open_:

        async def open_sqlite(path: Path | None = None, **kwargs: Any) -> SQLiteStore:
            return await open_(SQLiteStore(path or tmp_path / "healthd.db", **kwargs))

        yield open_sqlite


def _query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def test_database_is_in_wal_mode(opened: Callable[..., Any], tmp_path: Path) -> None:
    await opened()

    rows = await asyncio.to_thread(_query, tmp_path / "healthd.db", "PRAGMA journal_mode")

    assert rows == [("wal",)]


async def test_schema_version_is_recorded_in_meta(opened: Callable[..., Any]) -> None:
    store = await opened()

    assert await store.get_meta("schema_version") == SCHEMA_VERSION


async def test_a_newer_schema_is_refused(tmp_path: Path, opened: Callable[..., Any]) -> None:
    store = await opened()
    await store.set_meta("schema_version", SCHEMA_VERSION + 1)
    await store.close()

    with pytest.raises(StoreError, match="newer than this healthd supports"):
        await opened()


async def test_state_and_open_incident_survive_a_restart(
    opened: Callable[..., Any], tmp_path: Path
) -> None:
    """A restart neither re-pages (the incident is still open) nor resets the timer."""
    state = IntegrationState(
        integration_id="bridge-dc1",
        status=Status.UNREACHABLE,
        consecutive_failures=7,
        unreachable_since=T0,
    )
    result = ProbeResult.from_findings(
        integration_id="bridge-dc1", started_at=T0, duration_seconds=5.0, findings=[]
    )
    incident = open_incident("bridge")
    first = await opened()
    await first.record_run(state, result, [])
    await first.apply_alerts(opened=[incident], resolved=[], events=[], now=T0)
    await first.close()

    second = await opened()

    assert await second.load_states() == {"bridge-dc1": state}
    assert await second.latest_results() == {"bridge-dc1": result}
    assert await second.open_incidents() == [incident]


async def test_row_left_sending_by_a_crash_is_requeued_after_reopen(
    opened: Callable[..., Any],
) -> None:
    crashed = await opened()
    await crashed.apply_alerts(
        opened=[], resolved=[], events=[("pagerduty", alert_event())], now=T0
    )
    [lost] = await crashed.claim_due(T0)
    # The first process never marks or closes; a second one opens the same file.
    restarted = await opened()

    assert await restarted.requeue_stale() == 1
    [again] = await restarted.claim_due(T0)
    assert (again.id, again.event) == (lost.id, lost.event)


async def test_unwritable_path_raises_store_error_naming_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    path = blocker / "healthd.db"

    with pytest.raises(StoreError, match="not-a-directory/healthd.db"):
        await SQLiteStore(path).open()


async def test_file_that_is_not_a_database_raises_store_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not an sqlite database, just text " * 100)

    with pytest.raises(StoreError, match="garbage.db.*open failed"):
        await SQLiteStore(path).open()


async def test_failed_apply_alerts_rolls_back_the_incident_too(
    opened: Callable[..., Any],
) -> None:
    def refuse_outbox_rows(conn: sqlite3.Connection) -> None:
        # Stands in for a full disk at the moment the outbox row is written.
        conn.execute(
            "CREATE TEMP TRIGGER refuse BEFORE INSERT ON outbox"
            " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )

    store = await opened(on_connect=refuse_outbox_rows)
    incident = open_incident("bridge")

    with pytest.raises(StoreError, match="apply_alerts failed: database or disk is full"):
        await store.apply_alerts(
            opened=[incident], resolved=[], events=[("pagerduty", alert_event())], now=T0
        )

    assert await store.open_incidents() == []


async def test_database_work_runs_off_the_event_loop_thread(opened: Callable[..., Any]) -> None:
    threads: set[int] = set()

    def trace(conn: sqlite3.Connection) -> None:
        conn.set_trace_callback(lambda _statement: threads.add(threading.get_ident()))

    store = await opened(on_connect=trace)
    await store.set_meta("k", 1)
    await store.load_states()

    assert len(threads) == 1
    assert threading.get_ident() not in threads


async def test_calls_after_close_raise_store_error(opened: Callable[..., Any]) -> None:
    store = await opened()
    await store.close()

    with pytest.raises(StoreError, match="not open"):
        await store.load_states()


async def test_finished_outbox_rows_beyond_the_count_are_pruned(
    opened: Callable[..., Any], tmp_path: Path
) -> None:
    store = await opened(retention=Retention(finished_outbox=2))
    events = [("pagerduty", alert_event(key)) for key in "abcd"]
    await store.apply_alerts(opened=[], resolved=[], events=events, now=T0)
    for item in await store.claim_due(T0):
        await store.mark_sent(item.id, T0)

    rows = await asyncio.to_thread(
        _query, tmp_path / "healthd.db", "SELECT dedup_key FROM outbox ORDER BY id"
    )

    assert rows == [("c",), ("d",)]


async def test_finished_outbox_rows_older_than_the_age_are_pruned(
    opened: Callable[..., Any], tmp_path: Path
) -> None:
    store = await opened(retention=Retention(finished_outbox_age=timedelta(days=7)))
    later = T0 + timedelta(days=8)
    await store.apply_alerts(
        opened=[], resolved=[], events=[("pagerduty", alert_event("old"))], now=T0
    )
    await store.apply_alerts(
        opened=[], resolved=[], events=[("pagerduty", alert_event("pending"))], now=T0
    )
    [old, pending] = await store.claim_due(T0)
    await store.mark_retry(pending.id, later + timedelta(hours=1), "HTTP 429")
    await store.mark_rejected(old.id, "HTTP 400")
    await store.apply_alerts(
        opened=[], resolved=[], events=[("pagerduty", alert_event("new"))], now=later
    )
    [new] = await store.claim_due(later)
    await store.mark_sent(new.id, later)

    rows = await asyncio.to_thread(
        _query, tmp_path / "healthd.db", "SELECT dedup_key, status FROM outbox ORDER BY id"
    )

    assert rows == [("pending", "pending"), ("new", "sent")]


async def test_outbox_event_is_stored_as_json(opened: Callable[..., Any], tmp_path: Path) -> None:
    store = await opened()
    await store.apply_alerts(opened=[], resolved=[], events=[("pagerduty", alert_event())], now=T0)

    [(raw, created_at)] = await asyncio.to_thread(
        _query, tmp_path / "healthd.db", "SELECT event, created_at FROM outbox"
    )

    assert json.loads(raw) == alert_event().to_dict()
    assert datetime.fromisoformat(created_at) == T0


def _run(iid: str) -> tuple[IntegrationState, ProbeResult, list[Any]]:
    state = IntegrationState(integration_id=iid, status=Status.OK, last_checked=T0)
    result = ProbeResult.from_findings(
        integration_id=iid, started_at=T0, duration_seconds=0.1, findings=[]
    )
    return state, result, []


def _tracing(statements: list[str], extra: str | None = None) -> Callable[[Any], None]:
    """on_connect hook: records every statement the store runs (and runs `extra` first)."""

    def hook(conn: sqlite3.Connection) -> None:
        if extra is not None:
            conn.execute(extra)
        conn.set_trace_callback(statements.append)

    return hook


async def test_concurrent_record_runs_share_one_transaction(opened: Callable[..., Any]) -> None:
    statements: list[str] = []
    store = await opened(on_connect=_tracing(statements))

    await asyncio.gather(*(store.record_run(*_run(f"i{n}")) for n in range(5)))

    assert statements.count("BEGIN IMMEDIATE") == 1
    assert set(await store.load_states()) == {f"i{n}" for n in range(5)}


async def test_a_run_the_database_refuses_fails_alone_and_its_batch_mates_land(
    opened: Callable[..., Any],
) -> None:
    refuse = (
        "CREATE TEMP TRIGGER refuse_bad BEFORE INSERT ON main.latest_result"
        " WHEN NEW.integration_id = 'bad' BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    statements: list[str] = []
    store = await opened(on_connect=_tracing(statements, refuse))

    outcomes = await asyncio.gather(
        *(store.record_run(*_run(iid)) for iid in ("ok1", "bad", "ok2")),
        return_exceptions=True,
    )

    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], StoreError) and "refused" in str(outcomes[1])
    # All-or-nothing per run: the refused run left no state row either.
    assert set(await store.load_states()) == {"ok1", "ok2"}
    assert set(await store.latest_results()) == {"ok1", "ok2"}
    assert statements.count("BEGIN IMMEDIATE") == 4  # the batch, then each run alone


async def test_a_batch_without_the_write_lock_fails_every_caller_with_store_error(
    opened: Callable[..., Any], tmp_path: Path
) -> None:
    store = await opened(on_connect=lambda conn: conn.execute("PRAGMA busy_timeout = 10"))
    other = sqlite3.connect(tmp_path / "healthd.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        outcomes = await asyncio.gather(
            *(store.record_run(*_run(f"i{n}")) for n in range(3)), return_exceptions=True
        )
    finally:
        other.execute("ROLLBACK")
        other.close()

    assert all(isinstance(o, StoreError) and "healthd.db" in str(o) for o in outcomes)
    await store.record_run(*_run("later"))
    assert set(await store.load_states()) == {"later"}


async def test_close_writes_the_runs_still_queued(
    opened: Callable[..., Any], tmp_path: Path
) -> None:
    store = await opened()

    # gather starts the record_run calls (each queues its run) before close begins.
    outcomes = await asyncio.gather(
        *(store.record_run(*_run(f"i{n}")) for n in range(3)), store.close()
    )

    assert outcomes == [None] * 4
    reopened = await opened()
    assert set(await reopened.load_states()) == {"i0", "i1", "i2"}


async def test_a_run_whose_caller_stopped_waiting_is_still_written(
    opened: Callable[..., Any],
) -> None:
    store = await opened()
    gone = asyncio.create_task(store.record_run(*_run("gone")))

    async def stop_waiting() -> None:
        gone.cancel()

    # Tasks start in order: "gone" queues its run before it is cancelled.
    await asyncio.gather(store.record_run(*_run("kept")), stop_waiting())

    with pytest.raises(asyncio.CancelledError):
        await gone
    assert set(await store.load_states()) == {"gone", "kept"}

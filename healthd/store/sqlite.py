"""The durable Store: one SQLite file in WAL mode, worked by one dedicated thread.

Why this shape:
- sqlite3 blocks, so every statement runs on a single-thread executor and the event loop
  only awaits a future. One thread also means the connection is never shared between
  threads, and the store's own calls are serialised without a lock.
- WAL with synchronous=NORMAL keeps every committed transaction across a process crash
  (the guarantee the daemon needs: a restart neither re-pages nor resets the
  unreachable timer) while readers never wait for the writer.
- Write methods use BEGIN IMMEDIATE, so a second process on the same file waits for the
  write lock (busy_timeout) before reading what it is about to change, instead of failing
  half-way through.
- `record_run` is group-committed: runs queue up while the thread is busy and are written
  together in one transaction when it is free; each caller returns once the transaction
  holding its run has committed. One transaction and one thread hop per probe were about a
  fifth of the daemon's CPU at high concurrency (bench/RESULTS.md). Each run still lands
  all-or-nothing: when a batch fails, its runs are retried one transaction each, so only
  the run that cannot be written fails (with StoreError) and the others land.
- Datetimes are stored as fixed-width UTC ISO 8601 text (`...T12:00:00.000000+00:00`), so
  text order is time order and `next_attempt_at <= ?` works in SQL.

Every sqlite3 error becomes a `StoreError` that names the file and the operation.

Cancelling a call does not stop its statement: the thread finishes the transaction. A claim
whose caller was cancelled leaves rows in `sending`, which `requeue_stale` returns on the
next start.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from healthd.errors import StoreError
from healthd.model import (
    AlertEvent,
    Incident,
    IntegrationState,
    OutboxItem,
    OutboxStatus,
    ProbeResult,
    Status,
    Transition,
    TransitionKind,
)
from healthd.store._retention import Retention

T = TypeVar("T")

BUSY_TIMEOUT_MS = 5_000

# Each entry upgrades the schema by one version; append, never edit a released one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        )""",
        """CREATE TABLE integration_state (
            integration_id TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            since TEXT,
            consecutive_failures INTEGER NOT NULL,
            consecutive_successes INTEGER NOT NULL,
            last_checked TEXT,
            last_success TEXT,
            unreachable_since TEXT,
            last_result_status TEXT NOT NULL,
            reachable_streak INTEGER NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE latest_result (
            integration_id TEXT PRIMARY KEY,
            result TEXT NOT NULL
        )""",
        """CREATE TABLE transitions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            integration_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            at TEXT NOT NULL,
            from_status TEXT NOT NULL,
            to_status TEXT NOT NULL
        )""",
        "CREATE INDEX transitions_by_integration ON transitions (integration_id, id)",
        """CREATE TABLE incidents (
            dedup_key TEXT PRIMARY KEY,
            rule TEXT NOT NULL,
            summary TEXT NOT NULL,
            opened_at TEXT NOT NULL,
            resolved_at TEXT,
            details TEXT NOT NULL
        )""",
        # dedup_key is copied out of the event so the ordering rule of claim_due can use
        # an index.
        """CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            channel TEXT NOT NULL,
            dedup_key TEXT NOT NULL,
            event TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            next_attempt_at TEXT NOT NULL,
            created_at TEXT NOT NULL,
            last_error TEXT,
            sent_at TEXT
        )""",
        "CREATE INDEX outbox_by_status ON outbox (status, next_attempt_at, id)",
        "CREATE INDEX outbox_by_key ON outbox (channel, dedup_key, id)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

_IN_FLIGHT = "('pending', 'sending')"
_FINISHED = "('sent', 'rejected')"
_OUTBOX_COLUMNS = "id, channel, event, status, attempts, next_attempt_at, created_at, last_error"


@dataclass(frozen=True, slots=True)
class _QueuedRun:
    """One `record_run` waiting for the writer: its rows, made on the loop, and its caller."""

    state_row: tuple[Any, ...]
    result_row: tuple[str, str]
    transition_rows: list[tuple[str, str, str, str, str]]
    done: asyncio.Future[None]


class SQLiteStore:
    """See `healthd.interfaces.Store` for the contract.

    `on_connect` runs on the store's thread right after the connection is made (extra
    pragmas, tracing); it receives the connection, which must not escape that thread.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        retention: Retention | None = None,
        on_connect: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self._retention = retention or Retention()
        self._on_connect = on_connect
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._queue: list[_QueuedRun] = []
        self._writer: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        if self._executor is not None:
            raise StoreError(f"sqlite store {self.path}: already open")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="healthd-store")
        try:
            await self._run("open", self._connect)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    async def close(self) -> None:
        if self._executor is None:
            return
        if self._writer is not None:  # runs already queued are written before closing
            await asyncio.wait({self._writer})
        try:
            await self._run("close", self._disconnect)
        finally:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _connect(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise StoreError(f"sqlite store {self.path}: cannot use WAL (journal is {mode})")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._migrate(conn)
            if self._on_connect is not None:
                self._on_connect(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _migrate(self, conn: sqlite3.Connection) -> None:
        with _transaction(conn):
            version = _schema_version(conn)
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"sqlite store {self.path}: schema version {version} is newer than "
                    f"this healthd supports ({SCHEMA_VERSION})"
                )
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    conn.execute(statement)
            if version < SCHEMA_VERSION:
                _put_meta(conn, "schema_version", SCHEMA_VERSION)

    async def _run(self, operation: str, work: Callable[[], T]) -> T:
        if self._executor is None:
            raise StoreError(f"sqlite store {self.path}: {operation} on a store that is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._guarded, operation, work)

    def _guarded(self, operation: str, work: Callable[[], T]) -> T:
        try:
            return work()
        except sqlite3.Error as exc:
            raise self._error(operation, exc) from exc

    def _error(self, operation: str, exc: sqlite3.Error) -> StoreError:
        return StoreError(f"sqlite store {self.path}: {operation} failed: {exc}")

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"sqlite store {self.path}: not open")
        return self._conn

    # -- state and results -------------------------------------------------------------

    async def load_states(self) -> dict[str, IntegrationState]:
        def work() -> dict[str, IntegrationState]:
            rows = self._db().execute(
                "SELECT integration_id, status, since, consecutive_failures,"
                " consecutive_successes, last_checked, last_success, unreachable_since,"
                " last_result_status, reachable_streak FROM integration_state"
            )
            return {row[0]: _state_from_row(row) for row in rows}

        return await self._run("load_states", work)

    async def record_run(
        self, state: IntegrationState, result: ProbeResult, transitions: Sequence[Transition]
    ) -> None:
        if self._executor is None:
            raise StoreError(f"sqlite store {self.path}: record_run on a store that is not open")
        run = _QueuedRun(
            state_row=_state_to_row(state),
            result_row=(result.integration_id, json.dumps(result.to_dict())),
            transition_rows=[
                (t.integration_id, t.kind.value, _iso(t.at), t.from_status.value, t.to_status.value)
                for t in transitions
            ],
            done=asyncio.get_running_loop().create_future(),
        )
        self._queue.append(run)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_queued(), name="healthd-store-runs")
        await run.done

    async def _write_queued(self) -> None:
        """Writes what is queued, one batch per transaction, until the queue is empty."""
        batch: list[_QueuedRun] = []
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                outcomes: list[BaseException | None]
                try:
                    outcomes = list(await self._run("record_run", partial(self._write_runs, batch)))
                except Exception as exc:  # no write lock, a failed COMMIT: no run's fault
                    outcomes = [exc] * len(batch)
                for run, outcome in zip(batch, outcomes, strict=True):
                    _settle(run.done, outcome)
                batch = []
        finally:
            self._writer = None
            # Only when this task is cancelled (the loop is closing) is anything left here.
            for run in (*batch, *self._queue):
                _settle(run.done, StoreError(f"sqlite store {self.path}: record_run cancelled"))
            self._queue = []

    def _write_runs(self, batch: list[_QueuedRun]) -> list[StoreError | None]:
        """On the store's thread: the batch in one transaction, or else each run alone.

        Not getting the write lock (another process held it past busy_timeout) or a failed
        COMMIT is no run's fault: that raises, and every caller in the batch hears it.
        """
        conn = self._db()
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._write(conn, batch)
        except BaseException as exc:
            conn.execute("ROLLBACK")
            if not isinstance(exc, sqlite3.Error) or len(batch) == 1:
                raise
        else:
            conn.execute("COMMIT")
            return [None] * len(batch)
        # A run the database refuses must not fail the runs queued with it.
        outcomes: list[StoreError | None] = []
        for run in batch:
            try:
                with _transaction(conn):
                    self._write(conn, [run])
                outcomes.append(None)
            except sqlite3.Error as exc:
                outcomes.append(self._error("record_run", exc))
        return outcomes

    def _write(self, conn: sqlite3.Connection, runs: list[_QueuedRun]) -> None:
        """The runs' rows, one statement per table for the whole batch (in queue order, so a
        later run of the same integration wins)."""
        conn.executemany(
            "INSERT OR REPLACE INTO integration_state VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run.state_row for run in runs],
        )
        conn.executemany(
            "INSERT OR REPLACE INTO latest_result VALUES (?, ?)", [run.result_row for run in runs]
        )
        transitions = [row for run in runs for row in run.transition_rows]
        if not transitions:
            return
        conn.executemany(
            "INSERT INTO transitions (integration_id, kind, at, from_status, to_status)"
            " VALUES (?, ?, ?, ?, ?)",
            transitions,
        )
        for integration_id in {row[0] for row in transitions}:
            conn.execute(
                "DELETE FROM transitions WHERE integration_id = ? AND id <= ("
                " SELECT id FROM transitions WHERE integration_id = ?"
                " ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (integration_id, integration_id, self._retention.transitions),
            )

    async def latest_results(self) -> dict[str, ProbeResult]:
        def work() -> dict[str, ProbeResult]:
            rows = self._db().execute("SELECT integration_id, result FROM latest_result")
            return {row[0]: ProbeResult.from_dict(json.loads(row[1])) for row in rows}

        return await self._run("latest_results", work)

    async def transitions(self, integration_id: str, limit: int = 20) -> list[Transition]:
        def work() -> list[Transition]:
            rows = self._db().execute(
                "SELECT integration_id, kind, at, from_status, to_status FROM transitions"
                " WHERE integration_id = ? ORDER BY id DESC LIMIT ?",
                (integration_id, limit),
            )
            return [
                Transition(
                    integration_id=row[0],
                    kind=TransitionKind(row[1]),
                    at=_parse(row[2]),
                    from_status=Status(row[3]),
                    to_status=Status(row[4]),
                )
                for row in rows
            ]

        return await self._run("transitions", work)

    # -- incidents and the outbox ------------------------------------------------------

    async def open_incidents(self) -> list[Incident]:
        return await self._incidents(
            "open_incidents",
            "WHERE resolved_at IS NULL ORDER BY opened_at, dedup_key",
            (),
        )

    async def recent_incidents(self, limit: int = 50) -> list[Incident]:
        # Open first (newest opened first), then resolved (most recently resolved first).
        return await self._incidents(
            "recent_incidents",
            "ORDER BY resolved_at IS NOT NULL, COALESCE(resolved_at, opened_at) DESC,"
            " opened_at DESC, dedup_key LIMIT ?",
            (limit,),
        )

    async def _incidents(
        self, operation: str, clause: str, params: tuple[Any, ...]
    ) -> list[Incident]:
        def work() -> list[Incident]:
            rows = self._db().execute(
                "SELECT dedup_key, rule, summary, opened_at, resolved_at, details"
                f" FROM incidents {clause}",
                params,
            )
            return [
                Incident(
                    dedup_key=row[0],
                    rule=row[1],
                    summary=row[2],
                    opened_at=_parse(row[3]),
                    resolved_at=_parse_optional(row[4]),
                    details=json.loads(row[5]),
                )
                for row in rows
            ]

        return await self._run(operation, work)

    async def apply_alerts(
        self,
        *,
        opened: Sequence[Incident],
        resolved: Sequence[tuple[str, datetime]],
        events: Sequence[tuple[str, AlertEvent]],
        now: datetime,
    ) -> None:
        incident_rows = [
            (
                i.dedup_key,
                i.rule,
                i.summary,
                _iso(i.opened_at),
                _iso_optional(i.resolved_at),
                json.dumps(dict(i.details)),
            )
            for i in opened
        ]
        resolve_rows = [(_iso(at), key) for key, at in resolved]
        stamp = _iso(now)
        event_rows = [
            (channel, event.dedup_key, json.dumps(event.to_dict()), stamp, stamp)
            for channel, event in events
        ]

        def work() -> None:
            conn = self._db()
            with _transaction(conn):
                # A key opened again after its resolve reuses the row; opening one that is
                # still open keeps the original start of the page.
                conn.executemany(
                    "INSERT INTO incidents VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (dedup_key) DO UPDATE SET rule = excluded.rule,"
                    " summary = excluded.summary, details = excluded.details,"
                    " opened_at = CASE WHEN incidents.resolved_at IS NULL"
                    "   THEN incidents.opened_at ELSE excluded.opened_at END,"
                    " resolved_at = excluded.resolved_at",
                    incident_rows,
                )
                conn.executemany(
                    "UPDATE incidents SET resolved_at = ? WHERE dedup_key = ?"
                    " AND resolved_at IS NULL",
                    resolve_rows,
                )
                conn.executemany(
                    "INSERT INTO outbox (channel, dedup_key, event, status, attempts,"
                    " next_attempt_at, created_at) VALUES (?, ?, ?, 'pending', 0, ?, ?)",
                    event_rows,
                )

        await self._run("apply_alerts", work)

    async def claim_due(self, now: datetime, limit: int = 50) -> list[OutboxItem]:
        stamp = _iso(now)

        def work() -> list[OutboxItem]:
            conn = self._db()
            claimed: list[OutboxItem] = []
            with _transaction(conn):
                # A row waits while an older row for the same incident and channel is still
                # in flight: a resolve must never reach PagerDuty before its trigger.
                rows = conn.execute(
                    f"SELECT {_OUTBOX_COLUMNS} FROM outbox AS o"
                    " WHERE status = 'pending' AND next_attempt_at <= ?"
                    " AND NOT EXISTS (SELECT 1 FROM outbox AS older"
                    "   WHERE older.channel = o.channel AND older.dedup_key = o.dedup_key"
                    f"   AND older.id < o.id AND older.status IN {_IN_FLIGHT})"
                    " ORDER BY id LIMIT ?",
                    (stamp, limit),
                ).fetchall()
                for row in rows:
                    taken = conn.execute(
                        "UPDATE outbox SET status = 'sending' WHERE id = ? AND status = 'pending'",
                        (row[0],),
                    ).rowcount
                    if taken == 1:
                        claimed.append(_outbox_item(row, OutboxStatus.SENDING))
            return claimed

        return await self._run("claim_due", work)

    async def mark_sent(self, item_id: int, now: datetime) -> None:
        stamp = _iso(now)
        cutoff = _iso(now - self._retention.finished_outbox_age)
        keep = self._retention.finished_outbox

        def work() -> None:
            conn = self._db()
            with _transaction(conn):
                _update_outbox_row(
                    conn,
                    "mark_sent",
                    "status = 'sent', attempts = attempts + 1, sent_at = ?",
                    (stamp, item_id),
                )
                conn.execute(
                    f"DELETE FROM outbox WHERE status IN {_FINISHED} AND (created_at < ?"
                    f" OR id <= (SELECT id FROM outbox WHERE status IN {_FINISHED}"
                    "   ORDER BY id DESC LIMIT 1 OFFSET ?))",
                    (cutoff, keep),
                )

        await self._run("mark_sent", work)

    async def mark_retry(self, item_id: int, next_attempt_at: datetime, error: str) -> None:
        stamp = _iso(next_attempt_at)

        def work() -> None:
            conn = self._db()
            with _transaction(conn):
                _update_outbox_row(
                    conn,
                    "mark_retry",
                    "status = 'pending', attempts = attempts + 1, next_attempt_at = ?,"
                    " last_error = ?",
                    (stamp, error, item_id),
                )

        await self._run("mark_retry", work)

    async def mark_rejected(self, item_id: int, error: str) -> None:
        def work() -> None:
            conn = self._db()
            with _transaction(conn):
                _update_outbox_row(
                    conn,
                    "mark_rejected",
                    "status = 'rejected', attempts = attempts + 1, last_error = ?",
                    (error, item_id),
                )

        await self._run("mark_rejected", work)

    async def requeue_stale(self) -> int:
        def work() -> int:
            conn = self._db()
            with _transaction(conn):
                return conn.execute(
                    "UPDATE outbox SET status = 'pending' WHERE status = 'sending'"
                ).rowcount

        return await self._run("requeue_stale", work)

    async def outbox_pending(self) -> dict[str, int]:
        def work() -> dict[str, int]:
            rows = self._db().execute(
                f"SELECT channel, COUNT(*) FROM outbox WHERE status IN {_IN_FLIGHT}"
                " GROUP BY channel"
            )
            return {row[0]: row[1] for row in rows}

        return await self._run("outbox_pending", work)

    async def outbox_oldest_pending(self, now: datetime) -> float | None:
        def work() -> str | None:
            row = (
                self._db()
                .execute(f"SELECT MIN(created_at) FROM outbox WHERE status IN {_IN_FLIGHT}")
                .fetchone()
            )
            return row[0] if row else None

        oldest = await self._run("outbox_oldest_pending", work)
        return None if oldest is None else (now - _parse(oldest)).total_seconds()

    # -- meta --------------------------------------------------------------------------

    async def get_meta(self, key: str) -> Any:
        def work() -> str | None:
            row = self._db().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            return row[0] if row else None

        raw = await self._run("get_meta", work)
        return None if raw is None else json.loads(raw)

    async def set_meta(self, key: str, value: Any) -> None:
        raw = json.dumps(value)

        def work() -> None:
            conn = self._db()
            with _transaction(conn):
                conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, raw))

        await self._run("set_meta", work)


def _settle(done: asyncio.Future[None], outcome: BaseException | None) -> None:
    """Tells a caller how its run went, unless it stopped waiting (cancelled)."""
    if done.done():
        return
    if outcome is None:
        done.set_result(None)
    else:
        done.set_exception(outcome)


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _update_outbox_row(
    conn: sqlite3.Connection, operation: str, assignments: str, params: tuple[Any, ...]
) -> None:
    """Updates one outbox row by id (the last parameter); an unknown id is a caller bug."""
    cursor = conn.execute(f"UPDATE outbox SET {assignments} WHERE id = ?", params)
    if cursor.rowcount != 1:
        raise StoreError(f"{operation}: no outbox row with id {params[-1]}")


def _schema_version(conn: sqlite3.Connection) -> int:
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if not has_meta:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(json.loads(row[0])) if row else 0


def _put_meta(conn: sqlite3.Connection, key: str, value: Any) -> None:
    conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))


def _iso(when: datetime) -> str:
    if when.tzinfo is None:
        raise ValueError(f"the store keeps aware datetimes only, got naive {when.isoformat()}")
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def _iso_optional(when: datetime | None) -> str | None:
    return None if when is None else _iso(when)


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _parse_optional(text: str | None) -> datetime | None:
    return None if text is None else _parse(text)


def _state_to_row(state: IntegrationState) -> tuple[Any, ...]:
    return (
        state.integration_id,
        state.status.value,
        _iso_optional(state.since),
        state.consecutive_failures,
        state.consecutive_successes,
        _iso_optional(state.last_checked),
        _iso_optional(state.last_success),
        _iso_optional(state.unreachable_since),
        state.last_result_status.value,
        state.reachable_streak,
    )


def _state_from_row(row: tuple[Any, ...]) -> IntegrationState:
    return IntegrationState(
        integration_id=row[0],
        status=Status(row[1]),
        since=_parse_optional(row[2]),
        consecutive_failures=row[3],
        consecutive_successes=row[4],
        last_checked=_parse_optional(row[5]),
        last_success=_parse_optional(row[6]),
        unreachable_since=_parse_optional(row[7]),
        last_result_status=Status(row[8]),
        reachable_streak=row[9],
    )


def _outbox_item(row: tuple[Any, ...], status: OutboxStatus) -> OutboxItem:
    return OutboxItem(
        id=row[0],
        channel=row[1],
        event=AlertEvent.from_dict(json.loads(row[2])),
        status=status,
        attempts=row[4],
        next_attempt_at=_parse(row[5]),
        created_at=_parse(row[6]),
        last_error=row[7],
    )

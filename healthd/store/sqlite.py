"""The durable Store on SQLite: one file in WAL mode, worked by one dedicated thread.

This module is the SQLite dialect: the statements each Store method runs, and how the
shared parts are put together for SQLite:

- `healthd.store._rows` encodes and decodes every row (as it does for any backend);
- `healthd.store._thread` owns the blocking connection on its own thread;
- `healthd.store._writer` group-commits `record_run`: here a batch is one BEGIN IMMEDIATE
  transaction with one `executemany` per table, run in one hop to the thread;
- `healthd.store._sqlite_schema` holds the schema, its migrations and the PRAGMAs.

Write methods use BEGIN IMMEDIATE (`_sqlite_schema.transaction`). Every sqlite3 error
becomes a `StoreError` that names the file and the operation.

The file is watched: before each call the store's thread compares the file at `path` with
the one it opened (device and inode). A file deleted under the running daemon is written
again at once from the open connection, which still holds every row (`_file_identity`):
nothing is forgotten, not an open incident nor a queued event, and the error log says so.
A file replaced by another one is someone's deliberate act, or a mistake this process
cannot undo: every call raises a StoreError naming the file until healthd is restarted on
the new one, so the daemon reports its store as failing (not ready, a page of its own)
while it keeps going in memory.

Cancelling a call does not stop its statement: the thread finishes the transaction. A claim
whose caller was cancelled leaves rows in `sending`, which `requeue_stale` returns on the
next start.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import structlog

from healthd.errors import StoreError
from healthd.model import (
    AlertEvent,
    Bucket,
    DeliveryOutcome,
    DeliveryStage,
    EventAction,
    Incident,
    IncidentEventRecord,
    IncidentQuery,
    IncidentRecord,
    IntegrationState,
    OutboxItem,
    OutboxStatus,
    ProbeResult,
    RegistryRecord,
    Transition,
)
from healthd.store import _history, _rows
from healthd.store._lock import FileLock
from healthd.store._retention import Retention
from healthd.store._sqlite_schema import PUT_META, SCHEMA_VERSION, connect, transaction
from healthd.store._thread import ConnectionThread
from healthd.store._writer import GroupCommit, RowsRefused

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

log = structlog.get_logger("healthd.store")


def _columns(names: Sequence[str]) -> str:
    return ", ".join(names)


def _marks(names: Sequence[str]) -> str:
    return ", ".join("?" * len(names))


def _statuses(statuses: Sequence[OutboxStatus]) -> str:
    return "(" + ", ".join(f"'{s.value}'" for s in statuses) + ")"


_IN_FLIGHT = _statuses(_rows.IN_FLIGHT)
_FINISHED = _statuses(_rows.FINISHED)


_SELECT_STATES = f"SELECT {_columns(_rows.STATE_COLUMNS)} FROM integration_state"
_PUT_STATE = _rows.upsert("integration_state", _rows.STATE_COLUMNS, _marks(_rows.STATE_COLUMNS))
_SELECT_RESULTS = f"SELECT {_columns(_rows.RESULT_COLUMNS)} FROM latest_result"
_PUT_RESULT = _rows.upsert("latest_result", _rows.RESULT_COLUMNS, _marks(_rows.RESULT_COLUMNS))
_ADD_TRANSITION = (
    f"INSERT INTO transitions ({_columns(_rows.TRANSITION_COLUMNS)})"
    f" VALUES ({_marks(_rows.TRANSITION_COLUMNS)})"
)
_PRUNE_TRANSITIONS = (
    "DELETE FROM transitions WHERE integration_id = ? AND id <= ("
    " SELECT id FROM transitions WHERE integration_id = ?"
    " ORDER BY id DESC LIMIT 1 OFFSET ?)"
)
_SELECT_TRANSITIONS = (
    f"SELECT {_columns(_rows.TRANSITION_COLUMNS)} FROM transitions"
    " WHERE integration_id = ? ORDER BY id DESC LIMIT ?"
)
_ADD_TO_BUCKET = (
    f"INSERT INTO history_buckets ({_columns(_history.BUCKET_COLUMNS)})"
    f" VALUES ({_marks(_history.BUCKET_COLUMNS)})"
    " ON CONFLICT (span, integration_id, start) DO UPDATE SET ok = ok + excluded.ok,"
    " degraded = degraded + excluded.degraded, bad = bad + excluded.bad,"
    " latency_total = latency_total + excluded.latency_total,"
    " latency_max = MAX(latency_max, excluded.latency_max)"
)
_PRUNE_BUCKETS = "DELETE FROM history_buckets WHERE span = ? AND integration_id = ? AND start <= ?"
_SELECT_BUCKETS = (
    f"SELECT {_columns(_history.BUCKET_COLUMNS)} FROM history_buckets"
    " WHERE span = ? AND integration_id = ? AND start >= ? ORDER BY start"
)
_SELECT_FLEET_BUCKETS = (
    f"SELECT {_columns(_history.BUCKET_COLUMNS)} FROM history_buckets"
    " WHERE span = ? AND start >= ? AND integration_id IN (SELECT value FROM json_each(?))"
    " ORDER BY integration_id, start"
)
# Each event queued for an incident is kept with the occurrence it was queued for (its key's
# latest: the one just opened or resolved), keyed by the outbox row whose send marks it
# sent. The outbox prunes its finished rows; these stay as long as their occurrence.
_ADD_INCIDENT_EVENT = (
    "INSERT INTO incident_events (outbox_id, incident_id, channel, action, queued_at)"
    " SELECT ?, id, ?, ?, ? FROM incidents WHERE dedup_key = ? ORDER BY id DESC LIMIT 1"
)
_MARK_EVENT_SENT = "UPDATE incident_events SET sent_at = ? WHERE outbox_id = ?"
_PRUNE_INCIDENT_EVENTS = (
    "DELETE FROM incident_events WHERE incident_id NOT IN (SELECT id FROM incidents)"
)
_SELECT_EVENTS = (
    "SELECT incident_id, action, channel, queued_at, sent_at FROM incident_events"
    " WHERE incident_id IN ({marks}) ORDER BY outbox_id"
)
_SUM_FLEET_BUCKETS = (
    "SELECT span, integration_id, MIN(start), SUM(ok), SUM(degraded), SUM(bad),"
    " SUM(latency_total), MAX(latency_max) FROM history_buckets"
    " WHERE span = ? AND start >= ? AND integration_id IN (SELECT value FROM json_each(?))"
    " GROUP BY integration_id"
)
_SELECT_INCIDENTS = f"SELECT {_columns(_rows.INCIDENT_COLUMNS)} FROM incidents"
# A key opened again after its resolve is a new occurrence, a row of its own (the earlier
# one is kept); opening one that is still open updates it and keeps the original start of
# the page (the partial unique index `incidents_open_once`).
_OPEN_INCIDENT = (
    f"INSERT INTO incidents ({_columns(_rows.INCIDENT_COLUMNS)})"
    f" VALUES ({_marks(_rows.INCIDENT_COLUMNS)})"
    " ON CONFLICT (dedup_key) WHERE resolved_at IS NULL DO UPDATE SET rule = excluded.rule,"
    " summary = excluded.summary, details = excluded.details"
)
# The newest `Retention.resolved_incidents` resolved occurrences are kept.
_PRUNE_RESOLVED_INCIDENTS = (
    "DELETE FROM incidents WHERE resolved_at IS NOT NULL AND id <= ("
    " SELECT id FROM incidents WHERE resolved_at IS NOT NULL"
    " ORDER BY id DESC LIMIT 1 OFFSET ?)"
)
_RESOLVE_INCIDENT = (
    "UPDATE incidents SET resolved_at = ? WHERE dedup_key = ? AND resolved_at IS NULL"
)
_ADD_OUTBOX_ROW = (
    f"INSERT INTO outbox ({_columns(_rows.NEW_OUTBOX_COLUMNS)})"
    f" VALUES ({_marks(_rows.NEW_OUTBOX_COLUMNS)})"
)
# A row waits while an older row for the same incident and channel is still in flight: a
# resolve must never reach PagerDuty before its trigger.
_SELECT_DUE = (
    f"SELECT {_columns(_rows.OUTBOX_ITEM_COLUMNS)} FROM outbox AS o"
    " WHERE status = 'pending' AND next_attempt_at <= ?"
    " AND NOT EXISTS (SELECT 1 FROM outbox AS older"
    "   WHERE older.channel = o.channel AND older.dedup_key = o.dedup_key"
    f"   AND older.id < o.id AND older.status IN {_IN_FLIGHT})"
    " ORDER BY id LIMIT ?"
)
_CLAIM = "UPDATE outbox SET status = 'sending' WHERE id = ? AND status = 'pending'"
_PRUNE_FINISHED = (
    f"DELETE FROM outbox WHERE status IN {_FINISHED} AND (created_at < ?"
    f" OR id <= (SELECT id FROM outbox WHERE status IN {_FINISHED}"
    "   ORDER BY id DESC LIMIT 1 OFFSET ?))"
)
_INTO_DELIVERIES = (
    f"INTO delivery_events ({_columns(_rows.DELIVERY_COLUMNS)})"
    f" VALUES ({_marks(_rows.DELIVERY_COLUMNS)})"
)
_ADD_DELIVERY = f"INSERT OR IGNORE {_INTO_DELIVERIES}"
# As counted: a replay (the key) is skipped, and a message's second final status
# (`delivery_final_once`) raises, since it is not the conflict target (see `record_deliveries`).
_ADD_COUNTED_DELIVERY = (
    f"INSERT {_INTO_DELIVERIES} ON CONFLICT (integration_id, message_id, status) DO NOTHING"
)
_PRUNE_DELIVERIES = "DELETE FROM delivery_events WHERE at < ?"
_SELECT_COUNTED = (
    f"SELECT {_columns(_rows.DELIVERY_COLUMNS)} FROM delivery_events"
    " WHERE counted = 1 AND at >= ? ORDER BY at"
)
_SELECT_EXAMPLES = (
    f"SELECT {_columns(_rows.DELIVERY_COLUMNS)} FROM delivery_events"
    " WHERE integration_id = ? AND provider_code = ? AND counted = 1 AND at >= ?"
    " ORDER BY at DESC LIMIT ?"
)


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
        pace: float = 0.0,
    ) -> None:
        """`pace`: the group commit's (healthd.store._writer), seconds between batches."""
        self.path = Path(path)
        self._retention = retention or Retention()
        self._on_connect = on_connect
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the open file
        self.recreated = 0  # times the file was written again after being deleted
        self._thread = ConnectionThread[sqlite3.Connection](
            f"sqlite store {self.path}",
            connect=self._connect,
            disconnect=sqlite3.Connection.close,
            errors=sqlite3.Error,
            check=self._file_identity,
        )
        self._lock = FileLock(self.path, self._thread.label)
        self._pruning = _history.Pruning(self._retention)
        self._runs = GroupCommit[_rows.RunRows](
            self._write_runs, label=self._thread.label, task_name="healthd-store-runs", pace=pace
        )

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Takes the file's lock first: nothing (not `requeue_stale`) touches a database
        another daemon is working."""
        self._lock.acquire()
        try:
            await self._thread.open()
        except BaseException:
            self._lock.release()
            raise

    async def close(self) -> None:
        try:
            await self._runs.flush()  # runs already queued are written before closing
            await self._thread.close()
        finally:
            self._lock.release()

    # -- the file under the connection (on the store's thread) -------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = connect(self.path, self._on_connect)
        stat = os.stat(self.path)
        self._identity = (stat.st_dev, stat.st_ino)
        return conn

    def _file_identity(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        """The connection to use: `conn` while the file is the one it opened; a new one on
        a fresh copy when the file was deleted; a StoreError when it was replaced."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return self._recreate(conn)
        if (stat.st_dev, stat.st_ino) != self._identity:
            raise StoreError(
                f"{self._thread.label}: the database file was replaced while healthd was"
                " running; healthd keeps its state in memory and does not write into a file"
                " it did not open: restart healthd to use the new file"
            )
        return conn

    def _recreate(self, old: sqlite3.Connection) -> sqlite3.Connection:
        """Writes everything the open connection holds (the deleted file, still open) into
        a new file at `path`, and continues on it. Stale -wal/-shm files of the deleted one
        are removed first: SQLite would otherwise apply them to the new file."""
        for suffix in ("-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        fresh = sqlite3.connect(self.path, isolation_level=None)
        try:
            old.backup(fresh)
        finally:
            fresh.close()
        new = self._connect()
        old.close()
        self.recreated += 1
        log.error(
            "store_file_recreated",
            path=str(self.path),
            message="the database file was deleted while healthd was running; it was"
            " written again from the open connection, with every open incident",
        )
        return new

    # -- state and results -------------------------------------------------------------

    async def load_states(self) -> dict[str, IntegrationState]:
        def work(conn: sqlite3.Connection) -> dict[str, IntegrationState]:
            return {row[0]: _rows.state_from_row(row) for row in conn.execute(_SELECT_STATES)}

        return await self._thread.run("load_states", work)

    async def record_run(
        self, state: IntegrationState, result: ProbeResult, transitions: Sequence[Transition]
    ) -> None:
        self._thread.ensure_open("record_run")
        await self._runs.submit(_rows.run_rows(state, result, transitions))

    async def _write_runs(self, runs: list[_rows.RunRows]) -> None:
        """The group commit's batch write: one transaction, one hop to the thread."""
        await self._thread.run("record_run", partial(self._write_batch, runs))

    def _write_batch(self, runs: list[_rows.RunRows], conn: sqlite3.Connection) -> None:
        """On the store's thread. Not getting the write lock (BEGIN, past busy_timeout) or
        a failed COMMIT raises the sqlite3 error as is: no run's fault."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._insert_runs(conn, runs)
        except BaseException as exc:
            conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise RowsRefused(self._thread.failure_message("record_run", exc)) from exc
            raise
        conn.execute("COMMIT")

    def _insert_runs(self, conn: sqlite3.Connection, runs: list[_rows.RunRows]) -> None:
        """The runs' rows, one statement per table for the whole batch (in queue order, so a
        later run of the same integration wins)."""
        conn.executemany(_PUT_STATE, [run.state for run in runs])
        conn.executemany(_PUT_RESULT, [run.result for run in runs])
        buckets = _history.merged(row for run in runs for row in run.buckets)
        conn.executemany(_ADD_TO_BUCKET, buckets)
        conn.executemany(_PRUNE_BUCKETS, self._pruning.due(buckets))
        transitions = [row for run in runs for row in run.transitions]
        if not transitions:
            return
        conn.executemany(_ADD_TRANSITION, transitions)
        keep = self._retention.transitions
        for integration_id in {row[0] for row in transitions}:
            conn.execute(_PRUNE_TRANSITIONS, (integration_id, integration_id, keep))

    async def latest_results(self) -> dict[str, ProbeResult]:
        def work(conn: sqlite3.Connection) -> dict[str, ProbeResult]:
            return {row[0]: _rows.result_from_row(row) for row in conn.execute(_SELECT_RESULTS)}

        return await self._thread.run("latest_results", work)

    async def transitions(self, integration_id: str, limit: int = 20) -> list[Transition]:
        def work(conn: sqlite3.Connection) -> list[Transition]:
            rows = conn.execute(_SELECT_TRANSITIONS, (integration_id, limit))
            return [_rows.transition_from_row(row) for row in rows]

        return await self._thread.run("transitions", work)

    # -- history -----------------------------------------------------------------------

    async def buckets(
        self, integration_id: str, span_seconds: int, since: datetime
    ) -> list[Bucket]:
        params = (span_seconds, integration_id, _history.epoch(since))

        def work(conn: sqlite3.Connection) -> list[Bucket]:
            return [_history.bucket(row) for row in conn.execute(_SELECT_BUCKETS, params)]

        return await self._thread.run("buckets", work)

    async def fleet_buckets(
        self, ids: Collection[str], span_seconds: int, since: datetime
    ) -> dict[str, list[Bucket]]:
        # The ids as one JSON array: any number of them in one bound parameter.
        params = (span_seconds, _history.epoch(since), json.dumps(list(ids)))

        def work(conn: sqlite3.Connection) -> dict[str, list[Bucket]]:
            found: dict[str, list[Bucket]] = {}
            for row in conn.execute(_SELECT_FLEET_BUCKETS, params):
                found.setdefault(row[1], []).append(_history.bucket(row))
            return found

        return await self._thread.run("fleet_buckets", work)

    async def fleet_totals(
        self, ids: Collection[str], span_seconds: int, since: datetime
    ) -> dict[str, Bucket]:
        params = (span_seconds, _history.epoch(since), json.dumps(list(ids)))

        def work(conn: sqlite3.Connection) -> dict[str, Bucket]:
            rows = conn.execute(_SUM_FLEET_BUCKETS, params)
            return {row[1]: _history.total(span_seconds, since, [row]) for row in rows}

        return await self._thread.run("fleet_totals", work)

    async def incident_history(self, query: IncidentQuery) -> list[IncidentRecord]:
        where, params = _incident_filter(query)

        def work(conn: sqlite3.Connection) -> list[IncidentRecord]:
            rows = conn.execute(
                f"SELECT id, {_columns(_rows.INCIDENT_COLUMNS)} FROM incidents"
                f" {where} ORDER BY id DESC LIMIT ?",
                (*params, query.limit),
            ).fetchall()
            events = _events_of(conn, [row[0] for row in rows])
            return [
                IncidentRecord(
                    id=row[0],
                    incident=_rows.incident_from_row(row[1:]),
                    events=events.get(row[0], ()),
                )
                for row in rows
            ]

        return await self._thread.run("incident_history", work)

    # -- incidents and the outbox ------------------------------------------------------

    async def open_incidents(self) -> list[Incident]:
        def work(conn: sqlite3.Connection) -> list[Incident]:
            rows = conn.execute(
                f"{_SELECT_INCIDENTS} WHERE resolved_at IS NULL ORDER BY opened_at, dedup_key"
            )
            return [_rows.incident_from_row(row) for row in rows]

        return await self._thread.run("open_incidents", work)

    async def apply_alerts(
        self,
        *,
        opened: Sequence[Incident],
        resolved: Sequence[tuple[str, datetime]],
        events: Sequence[tuple[str, AlertEvent]],
        now: datetime,
    ) -> None:
        incident_rows = [_rows.incident_row(i) for i in opened]
        resolve_rows = [(_rows.iso(at), key) for key, at in resolved]
        outbox_rows = [_rows.outbox_row(channel, event, now) for channel, event in events]

        keep = self._retention.resolved_incidents

        stamp = _rows.iso(now)
        kept_events = [(c, e.action.value, stamp, e.dedup_key) for c, e in events]

        def work(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.executemany(_OPEN_INCIDENT, incident_rows)
                conn.executemany(_RESOLVE_INCIDENT, resolve_rows)
                # One by one: each event kept with its incident names its outbox row.
                for row, kept in zip(outbox_rows, kept_events, strict=True):
                    outbox_id = conn.execute(_ADD_OUTBOX_ROW, row).lastrowid
                    conn.execute(_ADD_INCIDENT_EVENT, (outbox_id, *kept))
                if resolve_rows:
                    conn.execute(_PRUNE_RESOLVED_INCIDENTS, (keep,))
                    conn.execute(_PRUNE_INCIDENT_EVENTS)

        await self._thread.run("apply_alerts", work)

    async def claim_due(self, now: datetime, limit: int = 50) -> list[OutboxItem]:
        stamp = _rows.iso(now)

        def work(conn: sqlite3.Connection) -> list[OutboxItem]:
            claimed: list[OutboxItem] = []
            with transaction(conn):
                rows = conn.execute(_SELECT_DUE, (stamp, limit)).fetchall()
                for row in rows:
                    if conn.execute(_CLAIM, (row[0],)).rowcount == 1:
                        claimed.append(_rows.outbox_item(row, OutboxStatus.SENDING))
            return claimed

        return await self._thread.run("claim_due", work)

    async def mark_sent(self, item_id: int, now: datetime) -> None:
        stamp = _rows.iso(now)
        cutoff = _rows.iso(now - self._retention.finished_outbox_age)
        keep = self._retention.finished_outbox

        def work(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                _update_outbox_row(
                    conn,
                    "mark_sent",
                    "status = 'sent', attempts = attempts + 1, sent_at = ?",
                    (stamp, item_id),
                )
                conn.execute(_MARK_EVENT_SENT, (stamp, item_id))
                conn.execute(_PRUNE_FINISHED, (cutoff, keep))

        await self._thread.run("mark_sent", work)

    async def mark_retry(self, item_id: int, next_attempt_at: datetime, error: str) -> None:
        stamp = _rows.iso(next_attempt_at)

        def work(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                _update_outbox_row(
                    conn,
                    "mark_retry",
                    "status = 'pending', attempts = attempts + 1, next_attempt_at = ?,"
                    " last_error = ?",
                    (stamp, error, item_id),
                )

        await self._thread.run("mark_retry", work)

    async def mark_rejected(self, item_id: int, error: str) -> None:
        def work(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                _update_outbox_row(
                    conn,
                    "mark_rejected",
                    "status = 'rejected', attempts = attempts + 1, last_error = ?",
                    (error, item_id),
                )

        await self._thread.run("mark_rejected", work)

    async def requeue_stale(self) -> int:
        def work(conn: sqlite3.Connection) -> int:
            with transaction(conn):
                return conn.execute(
                    "UPDATE outbox SET status = 'pending' WHERE status = 'sending'"
                ).rowcount

        return await self._thread.run("requeue_stale", work)

    async def outbox_pending(self) -> dict[str, int]:
        def work(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute(
                f"SELECT channel, COUNT(*) FROM outbox WHERE status IN {_IN_FLIGHT}"
                " GROUP BY channel"
            )
            return {row[0]: row[1] for row in rows}

        return await self._thread.run("outbox_pending", work)

    async def outbox_oldest_pending(self, now: datetime) -> float | None:
        def work(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                f"SELECT MIN(created_at) FROM outbox WHERE status IN {_IN_FLIGHT}"
            ).fetchone()
            return row[0] if row else None

        oldest = await self._thread.run("outbox_oldest_pending", work)
        return None if oldest is None else (now - _rows.parse(oldest)).total_seconds()

    # -- meta --------------------------------------------------------------------------

    async def get_meta(self, key: str) -> Any:
        def work(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            return row[0] if row else None

        return _rows.meta_value(await self._thread.run("get_meta", work))

    async def set_meta(self, key: str, value: Any) -> None:
        text = _rows.meta_text(value)

        def work(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute(PUT_META, (key, text))

        await self._thread.run("set_meta", work)

    # -- the delivery ledger -----------------------------------------------------------

    async def record_deliveries(self, outcomes: Sequence[DeliveryOutcome]) -> list[DeliveryOutcome]:
        if not outcomes:
            return []
        cutoff = _rows.iso(max(o.at for o in outcomes) - self._retention.deliveries_age)

        def work(conn: sqlite3.Connection) -> list[DeliveryOutcome]:
            counted = []
            with transaction(conn):
                for outcome in outcomes:
                    # Counted when the insert as counted holds. A replay hits the primary
                    # key and is done with (one statement: replays are most of what a
                    # provider's retries and the polls send); a message's second final
                    # status hits `delivery_final_once`, which raises and undoes only that
                    # statement, and is kept uncounted.
                    if outcome.stage is not DeliveryStage.PENDING:
                        row = _rows.delivery_row(outcome, True)
                        try:
                            if conn.execute(_ADD_COUNTED_DELIVERY, row).rowcount == 1:
                                counted.append(outcome)
                            continue  # counted, or a replay of a status already kept
                        except sqlite3.IntegrityError:
                            pass  # a second final status (never a reaction): kept uncounted
                    conn.execute(_ADD_DELIVERY, _rows.delivery_row(outcome, False))
                conn.execute(_PRUNE_DELIVERIES, (cutoff,))
            return counted

        return await self._thread.run("record_deliveries", work)

    async def counted_deliveries(self, since: datetime) -> list[DeliveryOutcome]:
        def work(conn: sqlite3.Connection) -> list[DeliveryOutcome]:
            rows = conn.execute(_SELECT_COUNTED, (_rows.iso(since),))
            return [_rows.delivery_from_row(row) for row in rows]

        return await self._thread.run("counted_deliveries", work)

    async def delivery_examples(
        self, integration_id: str, provider_code: str, since: datetime, limit: int
    ) -> list[DeliveryOutcome]:
        params = (integration_id, provider_code, _rows.iso(since), limit)

        def work(conn: sqlite3.Connection) -> list[DeliveryOutcome]:
            return [_rows.delivery_from_row(row) for row in conn.execute(_SELECT_EXAMPLES, params)]

        return await self._thread.run("delivery_examples", work)

    # -- the registry ------------------------------------------------------------------

    async def registry_records(self) -> list[RegistryRecord]:
        def work(conn: sqlite3.Connection) -> list[RegistryRecord]:
            rows = conn.execute(
                "SELECT id, tenant, revision, spec, updated_at FROM registry ORDER BY id"
            )
            return [
                RegistryRecord(
                    id=r[0], tenant=r[1], revision=r[2], spec=r[3], updated_at=_rows.parse(r[4])
                )
                for r in rows
            ]

        return await self._thread.run("registry_records", work)

    async def registry_write(self, *, put: Sequence[RegistryRecord], delete: Sequence[str]) -> None:
        rows = [(r.id, r.tenant, r.revision, r.spec, _rows.iso(r.updated_at)) for r in put]
        gone = [(record_id,) for record_id in delete]

        def work(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.executemany(
                    "INSERT OR REPLACE INTO registry (id, tenant, revision, spec, updated_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
                conn.executemany("DELETE FROM registry WHERE id = ?", gone)

        await self._thread.run("registry_write", work)


def _incident_filter(query: IncidentQuery) -> tuple[str, tuple[Any, ...]]:
    """The WHERE clause of `query`'s filters (the semantics of `MemoryStore`'s `_matches`);
    the tenant as `Incident.tenants` reads it from the details."""
    conditions: list[str] = []
    params: list[Any] = []
    if query.before is not None:
        conditions.append("id < ?")
        params.append(query.before)
    if query.rule is not None:
        conditions.append("rule = ?")
        params.append(query.rule)
    if query.open is not None:
        conditions.append("resolved_at IS NULL" if query.open else "resolved_at IS NOT NULL")
    for key in ("integration", "provider"):
        if (value := getattr(query, key)) is not None:
            conditions.append(f"json_extract(details, '$.{key}') = ?")
            params.append(value)
    if query.tenant is not None:
        conditions.append(
            "(json_extract(details, '$.tenant') = ? OR EXISTS (SELECT 1 FROM"
            " json_each(details, '$.tenants') WHERE value = ?))"
        )
        params.extend((query.tenant, query.tenant))
    return ("WHERE " + " AND ".join(conditions) if conditions else ""), tuple(params)


def _events_of(
    conn: sqlite3.Connection, incident_ids: Sequence[int]
) -> dict[int, tuple[IncidentEventRecord, ...]]:
    """Each listed occurrence's events, in the order they were queued."""
    if not incident_ids:
        return {}
    found: dict[int, list[IncidentEventRecord]] = {}
    statement = _SELECT_EVENTS.format(marks=", ".join("?" * len(incident_ids)))
    for row in conn.execute(statement, tuple(incident_ids)):
        found.setdefault(row[0], []).append(
            IncidentEventRecord(
                action=EventAction(row[1]),
                channel=row[2],
                queued_at=_rows.parse(row[3]),
                sent_at=_rows.parse_optional(row[4]),
            )
        )
    return {iid: tuple(events) for iid, events in found.items()}


def _update_outbox_row(
    conn: sqlite3.Connection, operation: str, assignments: str, params: tuple[Any, ...]
) -> None:
    """Updates one outbox row by id (the last parameter); an unknown id is a caller bug."""
    cursor = conn.execute(f"UPDATE outbox SET {assignments} WHERE id = ?", params)
    if cursor.rowcount != 1:
        raise StoreError(f"{operation}: no outbox row with id {params[-1]}")

"""The Store on PostgreSQL, for several replicas sharing one database (asyncpg, one pool).

This module is the PostgreSQL dialect, put together from the parts every backend shares:
`_rows` encodes and decodes every row, `_writer` group-commits `record_run` (a batch is
one transaction with one `executemany` per table, awaited on the pool, no thread), and
`_pg_schema` holds the schema and migrates it under an advisory lock. Why asyncpg and not
psycopg 3: bench/RESULTS.md, "Issue 13".

Several replicas, one database. What this store adds for them, all in the database:

- **Members.** Each open store is a member: a row in `members` whose heartbeat the store
  renews every `member_lease / 3` seconds (database clock). A member whose heartbeat is
  older than `member_lease` is dead: SIGKILLed, or paused (SIGSTOP), or cut off.
- **The outbox, any replica delivers.** `claim_due` takes rows with `FOR UPDATE SKIP
  LOCKED` (two replicas never take one row, and neither waits for the other), marks each
  with its sender, and first returns to pending the rows whose sender is dead. A row still
  waits while an older row of its channel and dedup key is in flight: a resolve never
  overtakes its trigger. `requeue_stale` returns this member's own rows and dead members'
  rows, never those a live replica is sending.
- **Run-time changes reach every replica.** `set_meta` (silences are meta) notifies
  the others in its own transaction (`NOTIFY healthd_meta`), and so does
  `registry_write` (key `registry`); `watch_meta` listens on a connection of its own,
  outside the pool, made again whenever the database comes back.
- **The alert lease, with fencing** (`acquire_lease`, `fence`). A lease row holds the
  holder, an expiry (database clock) and a token that grows whenever the holder changes.
  While `fence` names a lease and token, `apply_alerts` checks, in its own transaction and
  holding the lease row (`FOR SHARE`, so a takeover waits for it), that this member still
  holds the lease with that token and that it has not expired; otherwise it writes nothing
  and raises `LeaseLost`. A replica paused past its lease wakes up with a stale plan and
  writes none of it.

Every driver error becomes a `StoreError` that names the server and database and the
operation (never the password). The pool replaces a connection the server dropped, so the
store reconnects by itself once PostgreSQL is back; each call meanwhile fails fast
(`CONNECT_TIMEOUT`, `COMMAND_TIMEOUT`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from datetime import datetime
from typing import Any, TypeAlias
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import structlog

from healthd.durations import parse_duration
from healthd.errors import ConfigError, LeaseLost, StoreError
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
from healthd.secrets import Secret
from healthd.store import _history, _rows
from healthd.store._pg_schema import migrate
from healthd.store._retention import Retention
from healthd.store._writer import GroupCommit, RowsRefused

__all__ = ["PostgresStore", "parse_url"]

log = structlog.get_logger("healthd.store")

CONNECT_TIMEOUT = 5.0  # seconds to open one connection
COMMAND_TIMEOUT = 10.0  # seconds one statement may take
MEMBER_LEASE = 15.0  # seconds without a heartbeat after which a member is dead
POOL_SIZE = 10
META_CHANNEL = "healthd_meta"  # NOTIFY channel: the meta key a replica has just set
REGISTRY_KEY = "registry"  # told on META_CHANNEL when a replica has changed the registry
CHECKS_CHANNEL = "healthd_checks"  # NOTIFY channel: replicas' messages about live checks

_Connection: TypeAlias = "asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"
_DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
# What the database refuses in a row (not the connection's or the server's fault).
_REFUSED = (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError)


def _columns(names: Sequence[str]) -> str:
    return ", ".join(names)


def _params(count: int, start: int = 1) -> str:
    return ", ".join(f"${n}" for n in range(start, start + count))


def _upsert(table: str, columns: Sequence[str], extra: str = "") -> str:
    return _rows.upsert(table, columns, _params(len(columns))) + extra


def _statuses(statuses: Sequence[OutboxStatus]) -> str:
    return "(" + ", ".join(f"'{s.value}'" for s in statuses) + ")"


_IN_FLIGHT = _statuses(_rows.IN_FLIGHT)
_FINISHED = _statuses(_rows.FINISHED)
_LIVE = "heartbeat_at > now() - make_interval(secs => {lease})"

_SELECT_STATES = f"SELECT {_columns(_rows.STATE_COLUMNS)} FROM integration_state"
_STATE_TYPES = ("text", "text", "text", "int", "int", "text", "text", "text", "text", "int", "int")
_SELECT_VERSIONS = "SELECT integration_id, version FROM integration_state"
# The oldest transaction still running (or the next one) in this snapshot: every write by
# an older one is in it.
_SNAPSHOT_XMIN = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text"
_SELECT_STATES_VERSIONED = f"SELECT {_columns(_rows.STATE_COLUMNS)}, version FROM integration_state"
# Compare-and-set: each row carries the version it expects to replace plus one; a row whose
# stored version moved on (another replica wrote it) is left alone and not returned.
_CAS_STATES = (
    f"INSERT INTO integration_state AS s ({_columns(_rows.STATE_COLUMNS)}, version)"
    " SELECT * FROM unnest("
    + ", ".join(f"${n}::{t}[]" for n, t in enumerate((*_STATE_TYPES, "bigint"), start=1))
    + ") ON CONFLICT (integration_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _rows.STATE_COLUMNS[1:])
    + ", version = excluded.version, written_by = pg_current_xact_id()"
    " WHERE s.version = excluded.version - 1"
    " RETURNING integration_id, version"
)
_SELECT_RESULTS = f"SELECT {_columns(_rows.RESULT_COLUMNS)} FROM latest_result"
_PUT_RESULT = _upsert("latest_result", _rows.RESULT_COLUMNS)
_ADD_TRANSITION = (
    f"INSERT INTO transitions ({_columns(_rows.TRANSITION_COLUMNS)})"
    f" VALUES ({_params(len(_rows.TRANSITION_COLUMNS))})"
)
_PRUNE_TRANSITIONS = (
    "DELETE FROM transitions WHERE integration_id = $1 AND id <= ("
    " SELECT id FROM transitions WHERE integration_id = $1"
    " ORDER BY id DESC LIMIT 1 OFFSET $2)"
)
_SELECT_TRANSITIONS = (
    f"SELECT {_columns(_rows.TRANSITION_COLUMNS)} FROM transitions"
    " WHERE integration_id = $1 ORDER BY id DESC LIMIT $2"
)
_ADD_TO_BUCKET = (
    f"INSERT INTO history_buckets AS b ({_columns(_history.BUCKET_COLUMNS)})"
    f" VALUES ({_params(len(_history.BUCKET_COLUMNS))})"
    " ON CONFLICT (span, integration_id, start) DO UPDATE SET ok = b.ok + excluded.ok,"
    " degraded = b.degraded + excluded.degraded, bad = b.bad + excluded.bad,"
    " latency_total = b.latency_total + excluded.latency_total,"
    " latency_max = GREATEST(b.latency_max, excluded.latency_max)"
)
_PRUNE_BUCKETS = (
    "DELETE FROM history_buckets WHERE span = $1 AND integration_id = $2 AND start <= $3"
)
_SELECT_BUCKETS = (
    f"SELECT {_columns(_history.BUCKET_COLUMNS)} FROM history_buckets"
    " WHERE span = $1 AND integration_id = $2 AND start >= $3 ORDER BY start"
)
_SELECT_FLEET_BUCKETS = (
    f"SELECT {_columns(_history.BUCKET_COLUMNS)} FROM history_buckets"
    " WHERE span = $1 AND start >= $2 AND integration_id = ANY($3::text[])"
    " ORDER BY integration_id, start"
)
_SUM_FLEET_BUCKETS = (
    "SELECT span, integration_id, MIN(start), SUM(ok)::int, SUM(degraded)::int, SUM(bad)::int,"
    " SUM(latency_total), MAX(latency_max) FROM history_buckets"
    " WHERE span = $1 AND start >= $2 AND integration_id = ANY($3::text[])"
    " GROUP BY span, integration_id"
)
# Each event queued for an incident is kept with its key's latest occurrence (the one just
# opened or resolved), by the outbox row whose send marks it sent.
_ADD_INCIDENT_EVENT = (
    "INSERT INTO incident_events (outbox_id, incident_id, channel, action, queued_at)"
    " SELECT $1, id, $2, $3, $4 FROM incidents WHERE dedup_key = $5 ORDER BY id DESC LIMIT 1"
)
_MARK_EVENT_SENT = "UPDATE incident_events SET sent_at = $1 WHERE outbox_id = $2"
_PRUNE_INCIDENT_EVENTS = (
    "DELETE FROM incident_events WHERE incident_id NOT IN (SELECT id FROM incidents)"
)
_SELECT_EVENTS = (
    "SELECT incident_id, action, channel, queued_at, sent_at FROM incident_events"
    " WHERE incident_id = ANY($1::bigint[]) ORDER BY outbox_id"
)
_SELECT_INCIDENTS = f"SELECT {_columns(_rows.INCIDENT_COLUMNS)} FROM incidents"
# Opening a key that is open keeps its start (the partial unique index incidents_open_once).
_OPEN_INCIDENT = (
    f"INSERT INTO incidents ({_columns(_rows.INCIDENT_COLUMNS)})"
    f" VALUES ({_params(len(_rows.INCIDENT_COLUMNS))})"
    " ON CONFLICT (dedup_key) WHERE resolved_at IS NULL DO UPDATE SET rule = excluded.rule,"
    " summary = excluded.summary, details = excluded.details"
)
_RESOLVE_INCIDENT = (
    "UPDATE incidents SET resolved_at = $1 WHERE dedup_key = $2 AND resolved_at IS NULL"
)
_PRUNE_RESOLVED_INCIDENTS = (
    "DELETE FROM incidents WHERE resolved_at IS NOT NULL AND id <= ("
    " SELECT id FROM incidents WHERE resolved_at IS NOT NULL"
    " ORDER BY id DESC LIMIT 1 OFFSET $1)"
)
_ADD_OUTBOX_ROW = (
    f"INSERT INTO outbox ({_columns(_rows.NEW_OUTBOX_COLUMNS)})"
    f" VALUES ({_params(len(_rows.NEW_OUTBOX_COLUMNS))}) RETURNING id"
)
# Rows whose sender ($1 is this member) is no longer alive go back to pending.
_RECLAIM_DEAD = (
    "UPDATE outbox SET status = 'pending', claimed_by = NULL WHERE status = 'sending'"
    " AND claimed_by IS DISTINCT FROM $1 AND NOT EXISTS (SELECT 1 FROM members AS m"
    f" WHERE m.id = outbox.claimed_by AND m.{_LIVE.format(lease='$2')})"
)
_CLAIM_DUE = (
    "UPDATE outbox SET status = 'sending', claimed_by = $3 WHERE id IN ("
    " SELECT id FROM outbox AS o WHERE status = 'pending' AND next_attempt_at <= $1"
    "  AND NOT EXISTS (SELECT 1 FROM outbox AS older"
    "   WHERE older.channel = o.channel AND older.dedup_key = o.dedup_key"
    f"   AND older.id < o.id AND older.status IN {_IN_FLIGHT})"
    "  ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)"
    f" RETURNING {_columns(_rows.OUTBOX_ITEM_COLUMNS)}"
)
_REQUEUE_STALE = (
    "UPDATE outbox SET status = 'pending', claimed_by = NULL WHERE status = 'sending'"
    " AND (claimed_by IS NULL OR claimed_by = $1 OR NOT EXISTS (SELECT 1 FROM members AS m"
    f" WHERE m.id = outbox.claimed_by AND m.{_LIVE.format(lease='$2')}))"
)
_PRUNE_FINISHED = (
    f"DELETE FROM outbox WHERE status IN {_FINISHED} AND (created_at < $1"
    f" OR id <= (SELECT id FROM outbox WHERE status IN {_FINISHED}"
    "   ORDER BY id DESC LIMIT 1 OFFSET $2))"
)
# Taken when free or expired; renewed by its holder. The token grows on a change of holder.
_ACQUIRE_LEASE = (
    "INSERT INTO leases AS l (name, holder, token, expires_at)"
    " VALUES ($1, $2, 1, now() + make_interval(secs => $3))"
    " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
    "  token = CASE WHEN l.holder = excluded.holder THEN l.token ELSE l.token + 1 END,"
    "  expires_at = excluded.expires_at"
    " WHERE l.holder = excluded.holder OR l.expires_at <= now()"
    " RETURNING token"
)
_RELEASE_LEASE = (
    "UPDATE leases SET expires_at = now() WHERE name = $1 AND holder = $2 AND token = $3"
)
_PUT_META_AND_NOTIFY = (
    "WITH put AS (INSERT INTO meta AS m (key, value) VALUES ($1, $2)"
    "  ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    "  WHERE m.value IS DISTINCT FROM excluded.value RETURNING key)"
    " SELECT pg_notify($3, key) FROM put"
)
_PUT_REGISTRY = _upsert("registry", ("id", "tenant", "revision", "spec", "updated_at"))
_DELIVERY_COLUMNS = ", ".join(_rows.DELIVERY_COLUMNS)
_ADD_DELIVERY = (
    f"INSERT INTO delivery_events ({_DELIVERY_COLUMNS})"
    f" VALUES ({', '.join(f'${n}' for n in range(1, len(_rows.DELIVERY_COLUMNS) + 1))})"
    " ON CONFLICT DO NOTHING RETURNING 1"
)
_SELECT_COUNTED = (
    f"SELECT {_DELIVERY_COLUMNS} FROM delivery_events WHERE counted = 1 AND at >= $1 ORDER BY at"
)
_SELECT_EXAMPLES = (
    f"SELECT {_DELIVERY_COLUMNS} FROM delivery_events"
    " WHERE integration_id = $1 AND provider_code = $2 AND counted = 1 AND at >= $3"
    " ORDER BY at DESC LIMIT $4"
)
_CHECK_FENCE = (
    "SELECT 1 FROM leases WHERE name = $1 AND holder = $2 AND token = $3"
    " AND expires_at > now() FOR SHARE"
)


def parse_url(url: str) -> tuple[str, Secret | None, float]:
    """The DSN asyncpg is given, the password and the member lease in seconds, from
    `store: postgresql://...`.

    The password is a secret reference in the query (`?password=env:NAME` or
    `?password=file:/path`), never a literal in the URL: a literal is refused (ConfigError
    at `store`), naming the form to use and not the value. `?lease=15s` is the member and
    alert lease (MEMBER_LEASE by default): how long a dead replica's share and the alert
    lease wait before the survivors take them.
    """
    parts = urlsplit(url)
    if parts.password is not None:
        raise ConfigError(
            "store",
            "a password written in the store URL is a literal secret; give it as"
            " ?password=env:NAME or ?password=file:/path",
        )
    if not parts.hostname and not parts.path.strip("/"):
        raise ConfigError("store", "a postgresql:// URL names a host and a database")
    query = parse_qsl(parts.query, keep_blank_values=True)
    password: Secret | None = None
    lease = MEMBER_LEASE
    rest: list[tuple[str, str]] = []
    for key, value in query:
        try:
            if key == "password":
                password = Secret.resolve(value)
            elif key == "lease":
                lease = parse_duration(value).total_seconds()
            else:
                rest.append((key, value))
        except ValueError as exc:
            raise ConfigError("store", f"{key}: {exc}") from None
    return urlunsplit(parts._replace(query=urlencode(rest))), password, lease


class PostgresStore:
    """See `healthd.interfaces.Store` for the contract, and the module for what replicas add.

    `fence`, when set, is `(lease name, token)`: `apply_alerts` writes only while this
    member holds that lease with that token (`LeaseLost` otherwise).
    """

    def __init__(
        self,
        dsn: str,
        *,
        password: Secret | None = None,
        retention: Retention | None = None,
        pool_size: int = POOL_SIZE,
        member_lease: float = MEMBER_LEASE,
        member_name: str | None = None,
    ) -> None:
        parts = urlsplit(dsn)
        self._dsn = dsn
        self._password = password
        self.label = f"postgresql store {parts.hostname or 'localhost'}:{parts.port or 5432}"
        self.label += parts.path or "/"
        self._retention = retention or Retention()
        self._pool_size = pool_size
        self.member_lease = member_lease
        self.member_name = member_name or socket.gethostname()
        self.member_id: int | None = None
        self.fence: tuple[str, int] | None = None
        self._versions: dict[str, int] = {}  # each state's version as this replica knows it
        self._read_horizon: str | None = None  # the xmin of the last `changed` read-back
        self.state_conflicts = 0  # runs dropped by the compare-and-set
        # Told the ids of each refused batch (healthd.daemon: an owner reads them back).
        self.on_state_conflict: Callable[[list[str]], None] | None = None
        self._pool: asyncpg.Pool | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._pruning = _history.Pruning(self._retention)
        self._runs = GroupCommit[_rows.RunRows](
            self._write_runs, label=self.label, task_name="healthd-store-runs"
        )

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Connects, migrates (under the advisory lock) and joins as a member."""
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn,
                password=self._password.reveal() if self._password else None,
                min_size=1,
                max_size=self._pool_size,
                timeout=CONNECT_TIMEOUT,
                command_timeout=COMMAND_TIMEOUT,
            )
        except _DRIVER_ERRORS as exc:
            raise StoreError(f"{self.label}: cannot connect: {_describe(exc)}") from exc
        try:
            async with self._connection("open") as conn:
                await migrate(conn, self.label)
                self.member_id = await conn.fetchval(
                    "INSERT INTO members (name) VALUES ($1) RETURNING id", self.member_name
                )
        except BaseException:
            await self._pool.close()
            self._pool = None
            raise
        self._heartbeat = asyncio.create_task(self._beat(), name="healthd-store-heartbeat")

    async def close(self) -> None:
        pool = self._pool
        if pool is None:
            return
        try:
            await self._runs.flush()
        finally:
            for task in (self._heartbeat, self._watch):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            with contextlib.suppress(StoreError):
                async with self._connection("close") as conn:
                    # Leaving: its rows in sending are picked up by the others at once.
                    await conn.execute("DELETE FROM members WHERE id = $1", self.member_id)
            self._pool = None
            await pool.close()

    async def _beat(self) -> None:
        """Renews this member's heartbeat; a database away is logged, and tried again."""
        while True:
            await asyncio.sleep(self.member_lease / 3)
            try:
                await self.heartbeat()
            except StoreError as exc:
                log.warning("store_heartbeat_failed", store=self.label, error=str(exc))

    async def heartbeat(self) -> None:
        async with self._connection("heartbeat") as conn:
            await conn.execute(
                "INSERT INTO members AS m (id, name) OVERRIDING SYSTEM VALUE VALUES ($1, $2)"
                " ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()",
                self.member_id,
                self.member_name,
            )

    @contextlib.asynccontextmanager
    async def _connection(self, operation: str) -> AsyncIterator[_Connection]:
        """A pooled connection; every driver error inside becomes a StoreError."""
        if self._pool is None:
            raise StoreError(f"{self.label}: {operation}: the store is not open")
        try:
            async with self._pool.acquire(timeout=CONNECT_TIMEOUT) as conn:
                yield conn
        except _REFUSED as exc:
            raise RowsRefused(f"{self.label}: {operation} failed: {_describe(exc)}") from exc
        except _DRIVER_ERRORS as exc:
            raise StoreError(f"{self.label}: {operation} failed: {_describe(exc)}") from exc

    async def _fetch(self, operation: str, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self._connection(operation) as conn:
            rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
            return rows

    # -- state and results -------------------------------------------------------------

    async def load_states(self) -> dict[str, IntegrationState]:
        """Also learns each state's version: this replica's next write of it is a
        compare-and-set against what it read (`_write_runs`)."""
        async with self._connection("load_states") as conn, conn.transaction():
            rows = await conn.fetch(_SELECT_STATES)
            versions = await conn.fetch(_SELECT_VERSIONS)
        self._versions.update((row[0], row[1]) for row in versions)
        return {row[0]: _rows.state_from_row(row) for row in rows}

    async def load_runs(
        self, integration_ids: Sequence[str], *, changed: bool = False
    ) -> tuple[dict[str, IntegrationState], dict[str, ProbeResult]]:
        """These integrations' states and latest results (other replicas' runs, read back
        by healthd.cluster), in one snapshot; learns their versions as `load_states` does.

        `changed`: only those written since the previous `changed` read (all of them the
        first time). Each state row names the transaction that wrote it (`written_by`);
        a read notes its snapshot's xmin, the oldest transaction still running then, and
        the next read takes the rows written by that one or later. A transaction that
        committed after a read began is so never missed, whatever order the commits came
        in; the few rows of transactions running across a read are read twice, which
        changes nothing. At 100,000 integrations this turns the read-back from every state
        into the ones written in a member lease (bench/RESULTS.md, "Issue 13").
        """
        ids = list(integration_ids)
        since = self._read_horizon if changed else None
        where = "integration_id = ANY($1::text[])"
        args: list[Any] = [ids]
        if since is not None:
            where += " AND written_by >= $2::text::xid8"
            args.append(since)
        async with (
            self._connection("load_runs") as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            horizon = await conn.fetchval(_SNAPSHOT_XMIN)
            states = await conn.fetch(f"{_SELECT_STATES_VERSIONED} WHERE {where}", *args)
            results = await conn.fetch(
                f"{_SELECT_RESULTS} WHERE integration_id = ANY($1::text[])",
                [row[0] for row in states],
            )
        if changed:
            self._read_horizon = horizon
        self._versions.update((row[0], row[-1]) for row in states)
        return (
            {row[0]: _rows.state_from_row(tuple(row)[:-1]) for row in states},
            {row[0]: _rows.result_from_row(row) for row in results},
        )

    async def record_run(
        self, state: IntegrationState, result: ProbeResult, transitions: Sequence[Transition]
    ) -> None:
        if self._pool is None:
            raise StoreError(f"{self.label}: record_run: the store is not open")
        await self._runs.submit(_rows.run_rows(state, result, transitions))

    async def _write_runs(self, runs: list[_rows.RunRows]) -> None:
        """The group commit's batch: one transaction, one statement per table, in queue
        order (a later run of the same integration wins).

        The states are a compare-and-set on their version: a state another replica has
        written since this one read or wrote it is not overwritten, and that run (its
        result and transitions too) is dropped with a warning and told to
        `on_state_conflict`. A replica that lost the integration writes so (paused past its
        lease, its share moved on): the owner's state stands, and the next refresh of the
        shares stops this replica probing it. So does a new owner whose previous owner
        wrote once more after the handover read (it had a run going, or had not yet seen a
        replica join): that owner must read the state again, or every write it makes of
        it is refused.
        """
        latest = {run.state[0]: run.state for run in runs}  # one row per integration
        expected = {iid: self._versions.get(iid, 0) for iid in latest}
        columns = [list(column) for column in zip(*latest.values(), strict=True)]
        columns.append([expected[iid] + 1 for iid in latest])
        async with self._connection("record_run") as conn, conn.transaction():
            written: dict[str, int] = {
                row[0]: row[1] for row in await conn.fetch(_CAS_STATES, *columns)
            }
            runs = [run for run in runs if run.state[0] in written]
            await conn.executemany(_PUT_RESULT, [run.result for run in runs])
            buckets = _history.merged(row for run in runs for row in run.buckets)
            await conn.executemany(_ADD_TO_BUCKET, buckets)
            await conn.executemany(_PRUNE_BUCKETS, self._pruning.due(buckets))
            transitions = [row for run in runs for row in run.transitions]
            if transitions:
                await conn.executemany(_ADD_TRANSITION, transitions)
                keep = self._retention.transitions
                await conn.executemany(
                    _PRUNE_TRANSITIONS, [(i, keep) for i in {row[0] for row in transitions}]
                )
        self._versions.update(written)
        if refused := sorted(set(latest) - set(written)):
            self.state_conflicts += len(refused)
            log.warning(
                "store_state_conflict",
                store=self.label,
                integrations=refused[:10],
                count=len(refused),
                message="another replica wrote these states since this one read them;"
                " this replica's runs of them are dropped",
            )
            if self.on_state_conflict is not None:
                self.on_state_conflict(refused)

    async def latest_results(self) -> dict[str, ProbeResult]:
        rows = await self._fetch("latest_results", _SELECT_RESULTS)
        return {row[0]: _rows.result_from_row(row) for row in rows}

    async def transitions(self, integration_id: str, limit: int = 20) -> list[Transition]:
        rows = await self._fetch("transitions", _SELECT_TRANSITIONS, integration_id, limit)
        return [_rows.transition_from_row(row) for row in rows]

    # -- history -----------------------------------------------------------------------

    async def buckets(
        self, integration_id: str, span_seconds: int, since: datetime
    ) -> list[Bucket]:
        rows = await self._fetch(
            "buckets", _SELECT_BUCKETS, span_seconds, integration_id, _history.epoch(since)
        )
        return [_history.bucket(_bucket_row(row)) for row in rows]

    async def fleet_buckets(
        self, ids: Collection[str], span_seconds: int, since: datetime
    ) -> dict[str, list[Bucket]]:
        rows = await self._fetch(
            "fleet_buckets", _SELECT_FLEET_BUCKETS, span_seconds, _history.epoch(since), list(ids)
        )
        found: dict[str, list[Bucket]] = {}
        for row in rows:
            found.setdefault(row[1], []).append(_history.bucket(_bucket_row(row)))
        return found

    async def fleet_totals(
        self, ids: Collection[str], span_seconds: int, since: datetime
    ) -> dict[str, Bucket]:
        rows = await self._fetch(
            "fleet_totals", _SUM_FLEET_BUCKETS, span_seconds, _history.epoch(since), list(ids)
        )
        return {row[1]: _history.total(span_seconds, since, [_bucket_row(row)]) for row in rows}

    async def incident_history(self, query: IncidentQuery) -> list[IncidentRecord]:
        where, params = _incident_filter(query)
        async with self._connection("incident_history") as conn:
            rows = await conn.fetch(
                f"SELECT id, {_columns(_rows.INCIDENT_COLUMNS)} FROM incidents"
                f" {where} ORDER BY id DESC LIMIT ${len(params) + 1}",
                *params,
                query.limit,
            )
            events = await conn.fetch(_SELECT_EVENTS, [row[0] for row in rows])
        found: dict[int, list[IncidentEventRecord]] = {}
        for event in events:
            found.setdefault(event[0], []).append(
                IncidentEventRecord(
                    action=EventAction(event[1]),
                    channel=event[2],
                    queued_at=_rows.parse(event[3]),
                    sent_at=_rows.parse_optional(event[4]),
                )
            )
        return [
            IncidentRecord(
                id=row[0],
                incident=_rows.incident_from_row(tuple(row)[1:]),
                events=tuple(found.get(row[0], ())),
            )
            for row in rows
        ]

    # -- incidents and the outbox ------------------------------------------------------

    async def open_incidents(self) -> list[Incident]:
        rows = await self._fetch(
            "open_incidents",
            f"{_SELECT_INCIDENTS} WHERE resolved_at IS NULL ORDER BY opened_at, dedup_key",
        )
        return [_rows.incident_from_row(row) for row in rows]

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
        stamp = _rows.iso(now)
        fence = self.fence
        async with self._connection("apply_alerts") as conn, conn.transaction():
            if fence is not None:
                name, token = fence
                if await conn.fetchval(_CHECK_FENCE, name, self.member_id, token) is None:
                    raise LeaseLost(
                        f"{self.label}: apply_alerts: lease {name!r} (token {token}) is no"
                        " longer held by this replica; its plan is not written"
                    )
            await conn.executemany(_OPEN_INCIDENT, incident_rows)
            await conn.executemany(_RESOLVE_INCIDENT, resolve_rows)
            # One by one: each event kept with its incident names its outbox row.
            for row, (channel, event) in zip(outbox_rows, events, strict=True):
                outbox_id = await conn.fetchval(_ADD_OUTBOX_ROW, *row)
                await conn.execute(
                    _ADD_INCIDENT_EVENT, outbox_id, channel, event.action.value, stamp,
                    event.dedup_key,
                )  # fmt: skip
            if resolve_rows:
                await conn.execute(_PRUNE_RESOLVED_INCIDENTS, self._retention.resolved_incidents)
                await conn.execute(_PRUNE_INCIDENT_EVENTS)

    async def claim_due(self, now: datetime, limit: int = 50) -> list[OutboxItem]:
        async with self._connection("claim_due") as conn, conn.transaction():
            await conn.execute(_RECLAIM_DEAD, self.member_id, self.member_lease)
            rows = await conn.fetch(_CLAIM_DUE, _rows.iso(now), limit, self.member_id)
        items = [_rows.outbox_item(row, OutboxStatus.SENDING) for row in rows]
        return sorted(items, key=lambda item: item.id)  # RETURNING keeps no order

    async def mark_sent(self, item_id: int, now: datetime) -> None:
        cutoff = _rows.iso(now - self._retention.finished_outbox_age)
        async with self._connection("mark_sent") as conn, conn.transaction():
            await self._update_outbox_row(
                conn,
                "mark_sent",
                "status = 'sent', attempts = attempts + 1, sent_at = $2",
                item_id,
                _rows.iso(now),
            )
            await conn.execute(_MARK_EVENT_SENT, _rows.iso(now), item_id)
            await conn.execute(_PRUNE_FINISHED, cutoff, self._retention.finished_outbox)

    async def mark_retry(self, item_id: int, next_attempt_at: datetime, error: str) -> None:
        async with self._connection("mark_retry") as conn:
            await self._update_outbox_row(
                conn,
                "mark_retry",
                "status = 'pending', attempts = attempts + 1, next_attempt_at = $2,"
                " last_error = $3, claimed_by = NULL",
                item_id,
                _rows.iso(next_attempt_at),
                error,
            )

    async def mark_rejected(self, item_id: int, error: str) -> None:
        async with self._connection("mark_rejected") as conn:
            await self._update_outbox_row(
                conn,
                "mark_rejected",
                "status = 'rejected', attempts = attempts + 1, last_error = $2",
                item_id,
                error,
            )

    @staticmethod
    async def _update_outbox_row(
        conn: _Connection, operation: str, assignments: str, item_id: int, *args: Any
    ) -> None:
        """Updates one outbox row by id; an unknown id is a caller bug."""
        status = await conn.execute(
            f"UPDATE outbox SET {assignments} WHERE id = $1", item_id, *args
        )
        if status != "UPDATE 1":
            raise StoreError(f"{operation}: no outbox row with id {item_id}")

    async def requeue_stale(self) -> int:
        async with self._connection("requeue_stale") as conn:
            status = await conn.execute(_REQUEUE_STALE, self.member_id, self.member_lease)
        return int(status.rsplit(" ", 1)[-1])

    async def outbox_pending(self) -> dict[str, int]:
        rows = await self._fetch(
            "outbox_pending",
            f"SELECT channel, COUNT(*) FROM outbox WHERE status IN {_IN_FLIGHT} GROUP BY channel",
        )
        return {row[0]: row[1] for row in rows}

    async def outbox_oldest_pending(self, now: datetime) -> float | None:
        rows = await self._fetch(
            "outbox_oldest_pending",
            f"SELECT MIN(created_at) FROM outbox WHERE status IN {_IN_FLIGHT}",
        )
        oldest = rows[0][0] if rows else None
        return None if oldest is None else (now - _rows.parse(oldest)).total_seconds()

    # -- meta --------------------------------------------------------------------------

    async def get_meta(self, key: str) -> Any:
        rows = await self._fetch("get_meta", "SELECT value FROM meta WHERE key = $1", key)
        return _rows.meta_value(rows[0][0] if rows else None)

    async def set_meta(self, key: str, value: Any) -> None:
        """Also tells every replica watching (`watch_meta`) which key changed, on commit;
        writing the value a key already holds tells no one (a replica that reads the
        silences again writes them back unchanged: no echo between replicas)."""
        text = _rows.meta_text(value)
        async with self._connection("set_meta") as conn:
            await conn.execute(_PUT_META_AND_NOTIFY, key, text, META_CHANNEL)

    async def tell(self, messages: Sequence[str]) -> None:
        """Sends each of `messages` to every replica's `told` (`watch_meta`), this one's
        too (healthd.cluster.checks: who asks for a live check, who has run it)."""
        async with self._connection("tell") as conn:
            await conn.execute(
                "SELECT pg_notify($1, m) FROM unnest($2::text[]) AS m",
                CHECKS_CHANNEL,
                list(messages),
            )

    def watch_meta(
        self, changed: Callable[[str | None], None], told: Callable[[str], None] | None = None
    ) -> None:
        """Calls `changed(key)` whenever any replica sets a meta key (LISTEN/NOTIFY, within
        a round trip of the commit), and `changed(None)` each time the listening connection
        is made, first or again after the database was away: whatever changed meanwhile was
        not heard, so the caller reads again. `told(message)` hears what replicas `tell`.
        Runs until the store closes."""
        self._watch = asyncio.create_task(self._listen(changed, told), name="healthd-store-listen")

    async def _listen(
        self, changed: Callable[[str | None], None], told: Callable[[str], None] | None
    ) -> None:
        def heard(_conn: object, _pid: int, _channel: str, key: object) -> None:
            changed(str(key))

        def heard_told(_conn: object, _pid: int, _channel: str, message: object) -> None:
            if told is not None:
                told(str(message))

        while True:
            lost = asyncio.Event()

            def cut(_conn: object, lost: asyncio.Event = lost) -> None:
                lost.set()

            try:
                conn = await asyncpg.connect(
                    self._dsn,
                    password=self._password.reveal() if self._password else None,
                    timeout=CONNECT_TIMEOUT,
                )
            except _DRIVER_ERRORS as exc:
                log.warning("store_listen_failed", store=self.label, error=_describe(exc))
                await asyncio.sleep(self.member_lease / 3)
                continue
            try:
                conn.add_termination_listener(cut)
                await conn.add_listener(META_CHANNEL, heard)
                await conn.add_listener(CHECKS_CHANNEL, heard_told)
                changed(None)
                await lost.wait()
            except _DRIVER_ERRORS as exc:
                log.warning("store_listen_failed", store=self.label, error=_describe(exc))
            finally:
                conn.terminate()

    # -- the delivery ledger -----------------------------------------------------------

    async def record_deliveries(self, outcomes: Sequence[DeliveryOutcome]) -> list[DeliveryOutcome]:
        """As SQLite's: in one transaction, a message's first final status (and each
        reaction) counted, a replay ignored by the key, rows past the ledger's age pruned.

        The database decides what counts, so replicas writing one message's statuses at
        once count it once: the insert as counted conflicts with a committed or an
        in-flight counted final (`delivery_final_once`), and waits for the latter. Rows
        go in message order, so two replicas' overlapping batches wait for one another
        in the same order and never deadlock."""
        if not outcomes:
            return []
        cutoff = _rows.iso(max(o.at for o in outcomes) - self._retention.deliveries_age)
        counted: set[int] = set()
        ordered = sorted(enumerate(outcomes), key=lambda p: (p[1].integration_id, p[1].message_id))
        async with self._connection("record_deliveries") as conn, conn.transaction():
            for index, outcome in ordered:
                if outcome.stage is not DeliveryStage.PENDING:
                    row = _rows.delivery_row(outcome, True)
                    if await conn.fetchval(_ADD_DELIVERY, *row) is not None:
                        counted.add(index)
                        continue
                if outcome.stage is not DeliveryStage.REACTION:
                    await conn.fetchval(_ADD_DELIVERY, *_rows.delivery_row(outcome, False))
            await conn.execute("DELETE FROM delivery_events WHERE at < $1", cutoff)
        return [outcome for index, outcome in enumerate(outcomes) if index in counted]

    async def counted_deliveries(self, since: datetime) -> list[DeliveryOutcome]:
        rows = await self._fetch("counted_deliveries", _SELECT_COUNTED, _rows.iso(since))
        return [_rows.delivery_from_row(tuple(row)) for row in rows]

    async def delivery_examples(
        self, integration_id: str, provider_code: str, since: datetime, limit: int
    ) -> list[DeliveryOutcome]:
        rows = await self._fetch(
            "delivery_examples",
            _SELECT_EXAMPLES,
            integration_id,
            provider_code,
            _rows.iso(since),
            limit,
        )
        return [_rows.delivery_from_row(tuple(row)) for row in rows]

    # -- the registry ------------------------------------------------------------------

    async def registry_records(self) -> list[RegistryRecord]:
        rows = await self._fetch(
            "registry_records",
            "SELECT id, tenant, revision, spec, updated_at FROM registry ORDER BY id",
        )
        return [
            RegistryRecord(
                id=r[0], tenant=r[1], revision=r[2], spec=r[3], updated_at=_rows.parse(r[4])
            )
            for r in rows
        ]

    async def registry_write(self, *, put: Sequence[RegistryRecord], delete: Sequence[str]) -> None:
        """Also tells every replica watching (`watch_meta`, key `registry`) on commit, so
        a change made through any replica's API is probed by its owner within a second."""
        rows = [(r.id, r.tenant, r.revision, r.spec, _rows.iso(r.updated_at)) for r in put]
        async with self._connection("registry_write") as conn, conn.transaction():
            await conn.executemany(_PUT_REGISTRY, rows)
            await conn.executemany(
                "DELETE FROM registry WHERE id = $1", [(record_id,) for record_id in delete]
            )
            if rows or delete:
                await conn.execute("SELECT pg_notify($1, $2)", META_CHANNEL, REGISTRY_KEY)

    # -- members and leases ------------------------------------------------------------

    async def live_members(self) -> list[int]:
        """The ids of the members whose heartbeat is younger than the member lease."""
        rows = await self._fetch(
            "live_members",
            f"SELECT id FROM members WHERE {_LIVE.format(lease='$1')} ORDER BY id",
            self.member_lease,
        )
        return [row[0] for row in rows]

    async def acquire_lease(self, name: str, seconds: float) -> int | None:
        """Takes or renews lease `name` for `seconds` (database clock): its fencing token,
        or None while another live replica holds it."""
        async with self._connection("acquire_lease") as conn:
            token: int | None = await conn.fetchval(_ACQUIRE_LEASE, name, self.member_id, seconds)
            return token

    async def release_lease(self, name: str, token: int) -> None:
        """Ends the lease at once (a clean shutdown): the next replica need not wait it out."""
        async with self._connection("release_lease") as conn:
            await conn.execute(_RELEASE_LEASE, name, self.member_id, token)


def _bucket_row(row: asyncpg.Record) -> _history.BucketRow:
    return (row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7])


def _incident_filter(query: IncidentQuery) -> tuple[str, list[Any]]:
    """The WHERE clause of `query`'s filters (the semantics of `MemoryStore`'s `_matches`);
    the tenant as `Incident.tenants` reads it from the details (JSON text, read as jsonb)."""
    conditions: list[str] = []
    params: list[Any] = []

    def param(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    if query.before is not None:
        conditions.append(f"id < {param(query.before)}")
    if query.rule is not None:
        conditions.append(f"rule = {param(query.rule)}")
    if query.open is not None:
        conditions.append("resolved_at IS NULL" if query.open else "resolved_at IS NOT NULL")
    for key in ("integration", "provider"):
        if (value := getattr(query, key)) is not None:
            conditions.append(f"details::jsonb ->> '{key}' = {param(value)}")
    if query.tenant is not None:
        tenant = param(query.tenant)
        conditions.append(
            f"(details::jsonb ->> 'tenant' = {tenant}"
            f" OR COALESCE(details::jsonb -> 'tenants', '[]'::jsonb) ? {tenant})"
        )
    return ("WHERE " + " AND ".join(conditions) if conditions else ""), params


def _describe(exc: BaseException) -> str:
    """The driver's message: asyncpg's name the server and the SQL state, never a password."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

"""The PostgreSQL schema, its migrations, and how several replicas starting at once apply them.

- Column names and order follow the row codecs (`healthd.store._rows`), as in SQLite:
  datetimes are the codecs' fixed-width UTC text, so one encoding serves every backend.
  Only what the database itself times (member heartbeats, lease expiry) is `timestamptz`,
  read from the database's clock: replicas on different hosts agree on one clock.
- Migrations are versioned (the version lives in `meta`, as in SQLite) and run in one
  transaction holding a transaction-level advisory lock (`MIGRATION_LOCK`): replicas that
  start together queue on the lock, the first migrates, the others find the schema current
  and do nothing. PostgreSQL's DDL is transactional, so a migration interrupted half-way
  leaves the previous version whole. A database newer than this healthd is refused.
- `incidents_open_once` (a partial unique index) makes "an incident is open once" a
  constraint of the database, not a promise of the code.
- `members` and `leases` are the cluster's rows (`healthd.store.postgresql`): who is alive
  (heartbeats) and who holds the alert lease (a holder, an expiry and a fencing token that
  grows with every change of holder).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

from healthd.errors import StoreError
from healthd.store._rows import meta_text, meta_value

if TYPE_CHECKING:
    from asyncpg import Record
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = PoolConnectionProxy[Record]

#: The advisory lock key migrations run under (any constant; "hd13" in ASCII).
MIGRATION_LOCK = 0x68643133

# Each entry upgrades the schema by one version; append, never edit a released one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        )""",
        # `version` grows with every write of the row: the compare-and-set of replicas.
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
            reachable_streak INTEGER NOT NULL,
            disagreeing_runs INTEGER NOT NULL,
            version BIGINT NOT NULL DEFAULT 1
        )""",
        """CREATE TABLE latest_result (
            integration_id TEXT PRIMARY KEY,
            result TEXT NOT NULL
        )""",
        """CREATE TABLE transitions (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            integration_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            at TEXT NOT NULL,
            from_status TEXT NOT NULL,
            to_status TEXT NOT NULL
        )""",
        "CREATE INDEX transitions_by_integration ON transitions (integration_id, id)",
        """CREATE TABLE incidents (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            dedup_key TEXT NOT NULL,
            rule TEXT NOT NULL,
            summary TEXT NOT NULL,
            opened_at TEXT NOT NULL,
            resolved_at TEXT,
            details TEXT NOT NULL
        )""",
        "CREATE UNIQUE INDEX incidents_open_once ON incidents (dedup_key)"
        " WHERE resolved_at IS NULL",
        # `claimed_by` is the member sending the row: a row whose sender is no longer alive
        # goes back to pending (PostgresStore.claim_due).
        """CREATE TABLE outbox (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            channel TEXT NOT NULL,
            dedup_key TEXT NOT NULL,
            event TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            next_attempt_at TEXT NOT NULL,
            created_at TEXT NOT NULL,
            last_error TEXT,
            sent_at TEXT,
            claimed_by BIGINT
        )""",
        "CREATE INDEX outbox_by_status ON outbox (status, next_attempt_at, id)",
        "CREATE INDEX outbox_by_key ON outbox (channel, dedup_key, id)",
        """CREATE TABLE members (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name TEXT NOT NULL,
            started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )""",
        """CREATE TABLE leases (
            name TEXT PRIMARY KEY,
            holder BIGINT,
            token BIGINT NOT NULL,
            expires_at TIMESTAMPTZ NOT NULL
        )""",
    ),
    (
        # History (issue 15): each integration's run outcomes counted per hour and per day
        # (`healthd.store._history`), span first in the key as in SQLite.
        """CREATE TABLE history_buckets (
            span INTEGER NOT NULL,
            integration_id TEXT NOT NULL,
            start BIGINT NOT NULL,
            ok INTEGER NOT NULL,
            degraded INTEGER NOT NULL,
            bad INTEGER NOT NULL,
            latency_total DOUBLE PRECISION NOT NULL,
            latency_max DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (span, integration_id, start)
        )""",
        # Each event queued for an incident occurrence, by the outbox row that carried it.
        """CREATE TABLE incident_events (
            outbox_id BIGINT PRIMARY KEY,
            incident_id BIGINT NOT NULL,
            channel TEXT NOT NULL,
            action TEXT NOT NULL,
            queued_at TEXT NOT NULL,
            sent_at TEXT
        )""",
        "CREATE INDEX incident_events_by_incident ON incident_events (incident_id, outbox_id)",
    ),
    (
        # Integrations registered through the API (healthd.fleet); `spec` holds their
        # credentials sealed (healthd.vault), never in clear.
        """CREATE TABLE registry (
            id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            revision INTEGER NOT NULL,
            spec TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
    ),
    (
        # The delivery ledger (healthd.ledger): each message's statuses, once each (a
        # replayed callback hits the key); `counted` marks the one the windows count.
        """CREATE TABLE delivery_events (
            integration_id TEXT NOT NULL,
            message_id TEXT NOT NULL,
            status TEXT NOT NULL,
            stage TEXT NOT NULL,
            category TEXT,
            provider_code TEXT,
            source TEXT NOT NULL,
            at TEXT NOT NULL,
            counted INTEGER NOT NULL,
            PRIMARY KEY (integration_id, message_id, status)
        )""",
        "CREATE INDEX delivery_events_by_time ON delivery_events (at)",
        "CREATE INDEX delivery_examples ON delivery_events (integration_id, provider_code, at)"
        " WHERE counted = 1",
    ),
    (
        # The store decides a message's one counted final status (issue 12): two replicas
        # writing two final statuses of one message at once both read "none counted yet"
        # before this index; with it the second insert conflicts. Older duplicates (a
        # message counted twice before) keep their earliest.
        "UPDATE delivery_events SET counted = 0 WHERE stage = 'final' AND counted = 1 AND EXISTS"
        " (SELECT 1 FROM delivery_events e WHERE e.integration_id = delivery_events.integration_id"
        " AND e.message_id = delivery_events.message_id AND e.stage = 'final' AND e.counted = 1"
        " AND (e.at, e.status) < (delivery_events.at, delivery_events.status))",
        "CREATE UNIQUE INDEX delivery_final_once ON delivery_events (integration_id, message_id)"
        " WHERE stage = 'final' AND counted = 1",
    ),
    (
        # The transaction that last wrote each state: a replica reads back only the rows
        # written since its previous read (PostgresStore.load_runs, `changed`).
        "ALTER TABLE integration_state"
        " ADD COLUMN written_by xid8 NOT NULL DEFAULT pg_current_xact_id()",
        "CREATE INDEX integration_state_by_writer ON integration_state (written_by)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

PUT_META = (
    "INSERT INTO meta (key, value) VALUES ($1, $2)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)


async def migrate(conn: Connection, label: str) -> int:
    """Brings the database to SCHEMA_VERSION under the migration lock; returns the version
    it found. Raises StoreError for a database newer than this healthd."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        version = await schema_version(conn)
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{label}: schema version {version} is newer than this healthd supports"
                f" ({SCHEMA_VERSION})"
            )
        for statements in MIGRATIONS[version:]:
            for statement in statements:
                await conn.execute(statement)
        if version < SCHEMA_VERSION:
            await conn.execute(PUT_META, "schema_version", meta_text(SCHEMA_VERSION))
        return version


async def schema_version(conn: Connection) -> int:
    if await conn.fetchval("SELECT to_regclass('meta')") is None:
        return 0
    text = await conn.fetchval("SELECT value FROM meta WHERE key = 'schema_version'")
    return int(meta_value(text)) if text is not None else 0

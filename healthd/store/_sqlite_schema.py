"""The SQLite file: its schema, its migrations, and the PRAGMAs every connection sets.

- WAL with synchronous=NORMAL keeps every committed transaction across a process crash
  (the guarantee the daemon needs: a restart neither re-pages nor resets the unreachable
  timer) while readers never wait for the writer.
- busy_timeout makes a second process on the same file wait for the write lock instead of
  failing at once.
- The schema version lives in `meta`; a file newer than this healthd is refused, never
  downgraded.

Column names and order follow the row codecs (`healthd.store._rows`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from healthd.errors import StoreError
from healthd.store._rows import meta_text, meta_value

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
    (
        # The degraded debounce's counter (`IntegrationState.disagreeing_runs`).
        "ALTER TABLE integration_state ADD COLUMN disagreeing_runs INTEGER NOT NULL DEFAULT 0",
        # Each occurrence of an incident is its own row: a key opened again after its
        # resolve adds a row instead of overwriting the earlier occurrence. A key is open
        # at most once (the partial unique index).
        """CREATE TABLE incident_occurrences (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            dedup_key TEXT NOT NULL,
            rule TEXT NOT NULL,
            summary TEXT NOT NULL,
            opened_at TEXT NOT NULL,
            resolved_at TEXT,
            details TEXT NOT NULL
        )""",
        """INSERT INTO incident_occurrences
            (dedup_key, rule, summary, opened_at, resolved_at, details)
            SELECT dedup_key, rule, summary, opened_at, resolved_at, details
            FROM incidents ORDER BY opened_at, dedup_key""",
        "DROP TABLE incidents",
        "ALTER TABLE incident_occurrences RENAME TO incidents",
        "CREATE UNIQUE INDEX incidents_open_once ON incidents (dedup_key)"
        " WHERE resolved_at IS NULL",
    ),
    (
        # History (issue 15): each integration's run outcomes counted per hour and per
        # day (`healthd.store._history`). Keyed span first, so the status page's read of
        # every integration's days is one range of the key; WITHOUT ROWID keeps a bucket
        # one b-tree entry (about 40 bytes) instead of a row plus its index.
        """CREATE TABLE history_buckets (
            span INTEGER NOT NULL,
            integration_id TEXT NOT NULL,
            start INTEGER NOT NULL,
            ok INTEGER NOT NULL,
            degraded INTEGER NOT NULL,
            bad INTEGER NOT NULL,
            latency_total REAL NOT NULL,
            latency_max REAL NOT NULL,
            PRIMARY KEY (span, integration_id, start)
        ) WITHOUT ROWID""",
        # Each event queued for an incident occurrence, by the outbox row that carried it,
        # kept as long as its occurrence (the outbox prunes its finished rows sooner).
        """CREATE TABLE incident_events (
            outbox_id INTEGER PRIMARY KEY,
            incident_id INTEGER NOT NULL,
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
        # The delivery ledger (issue 12): each status of each message once (a replayed
        # callback hits the primary key), `counted` where the ledger counted it.
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
        ) WITHOUT ROWID""",
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
)
SCHEMA_VERSION = len(MIGRATIONS)

PUT_META = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"


def connect(
    path: Path, on_connect: Callable[[sqlite3.Connection], None] | None
) -> sqlite3.Connection:
    """A connection in WAL mode on a file at SCHEMA_VERSION (migrated if older), or raises
    having closed it. Autocommit mode: each write method opens its own transaction."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError(f"sqlite store {path}: cannot use WAL (journal is {mode})")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        _migrate(conn, path)
        if on_connect is not None:
            on_connect(conn)
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE takes the write lock first, so a second process on the file waits
    (busy_timeout) before reading what it is about to change, instead of failing half-way."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    with transaction(conn):
        version = _schema_version(conn)
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"sqlite store {path}: schema version {version} is newer than "
                f"this healthd supports ({SCHEMA_VERSION})"
            )
        for statements in MIGRATIONS[version:]:
            for statement in statements:
                conn.execute(statement)
        if version < SCHEMA_VERSION:
            conn.execute(PUT_META, ("schema_version", meta_text(SCHEMA_VERSION)))


def _schema_version(conn: sqlite3.Connection) -> int:
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if not has_meta:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(meta_value(row[0])) if row else 0

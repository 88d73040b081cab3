"""The store: healthd's durable memory (state, latest results, incidents, alert outbox).

`open_store(url)` picks the implementation from the config's `store:` value:

- `memory:` keeps everything in the process (tests, `healthd check`);
- `sqlite:///var/lib/healthd/state.db` (everything after `sqlite://` is the file path, so
  three slashes make it absolute) or a bare path ending in `.db` uses one SQLite file;
- `postgresql://user@host:5432/db?password=env:NAME` (or `password=file:/path`, and
  `lease=15s`) uses PostgreSQL, which several replicas share (`postgresql.py`).

A backend is its dialect put together from the parts every backend shares: `_rows` (the
row codecs: one encoding), `_writer` (group commit of `record_run`) and `_retention` (how
much history is kept). `sqlite.py` adds the SQLite schema (`_sqlite_schema`), its
statements and the thread its blocking driver runs on (`_thread`). `MemoryStore` defines
the semantics; `tests/contract/test_store.py` holds every backend to them (one row each).
"""

from __future__ import annotations

from healthd.errors import ConfigError
from healthd.interfaces import Store
from healthd.store._history import DAY_SPAN, HOUR_SPAN
from healthd.store._retention import Retention
from healthd.store.memory import MemoryStore
from healthd.store.postgresql import PostgresStore, parse_url
from healthd.store.sqlite import SQLiteStore

__all__ = [
    "DAY_SPAN",
    "HOUR_SPAN",
    "MemoryStore",
    "PostgresStore",
    "Retention",
    "SQLiteStore",
    "Store",
    "open_store",
]

_SQLITE_PREFIX = "sqlite://"
_POSTGRES_PREFIXES = ("postgresql://", "postgres://")


# A SQLite file named by URL (the daemon's) commits at most one batch of runs per this
# many seconds while runs keep coming (healthd.store._writer): 10,000 integrations at 60 s
# finish about 17 runs per 100 ms, which then share one transaction; a quiet daemon writes
# each run at once. At 20 ms a batch held 3 or 4 runs at 10,000, and the daemon's CPU per
# probe was 8 % higher (bench/RESULTS.md, session 7). A run is in memory (API, metrics,
# alerts) before its commit: the pace delays only the write.
SQLITE_RUN_PACE = 0.1


def open_store(url: str, retention: Retention | None = None) -> Store:
    """Builds (does not open) the store a URL names, keeping history for `retention` (the
    defaults when None); raises `ConfigError("store", ...)`."""
    url = url.strip()
    if url in ("memory:", "memory://"):
        return MemoryStore(retention=retention)
    if url.startswith(_SQLITE_PREFIX):
        path = url.removeprefix(_SQLITE_PREFIX)
        if not path:
            raise ConfigError("store", f"{url!r} names no database file")
        return SQLiteStore(path, retention=retention, pace=SQLITE_RUN_PACE)
    if "://" not in url and url.endswith(".db"):
        return SQLiteStore(url, retention=retention, pace=SQLITE_RUN_PACE)
    if url.startswith(_POSTGRES_PREFIXES):
        dsn, password, lease = parse_url(url)
        return PostgresStore(dsn, password=password, member_lease=lease, retention=retention)
    raise ConfigError(
        "store",
        f"unsupported store {url!r}; use 'memory:', 'sqlite:///path/to/file.db',"
        " a path ending in .db or 'postgresql://user@host/database'",
    )

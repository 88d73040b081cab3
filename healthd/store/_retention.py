"""How much history the stores keep, shared so both implementations prune alike.

The store is the daemon's memory across restarts, not an archive: transitions and
finished outbox rows are kept for the status page and for debugging a page that went
out, and then dropped so the file cannot grow without bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, kw_only=True, slots=True)
class Retention:
    """Bounds on history. Tests shrink them; the defaults suit a daemon running for years.

    - `transitions`: newest transitions kept per integration (pruned on `record_run`).
    - `finished_outbox`: newest sent/rejected outbox rows kept overall, and
      `finished_outbox_age`: how long one is kept after it was queued (both pruned on
      `mark_sent`). Pending and sending rows are never pruned.
    - `resolved_incidents`: resolved incident occurrences kept overall, the latest opened
      first (pruned on
      `apply_alerts`); each reopening is a new occurrence, so a flapping provider would
      otherwise grow the store without bound. Open incidents are never pruned.
    - `recent_history`: how long each integration's hour buckets of run outcomes are
      kept, and `history` its day buckets (`healthd.store._history`); a bucket is dropped
      once it started that long before the day of the integration's latest run.
    """

    transitions: int = 200
    finished_outbox: int = 10_000
    finished_outbox_age: timedelta = timedelta(days=7)
    resolved_incidents: int = 1_000
    recent_history: timedelta = timedelta(days=7)
    history: timedelta = timedelta(days=90)

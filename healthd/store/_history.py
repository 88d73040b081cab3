"""Run outcomes kept as buckets: what every backend writes for a run, and when it prunes.

Every run that proved something is counted into two buckets of its integration: an hour
(`HOUR_SPAN`, kept `Retention.recent_history`, 7 days by default: the 24-hour and 7-day
views and the latency trend) and a day (`DAY_SPAN`, kept `Retention.history`, 90 days:
the status page's bar and the 30- and 90-day views). A bucket is a few integers, so a day
of history is 25 small rows per integration, whatever its interval. Hours rather than 5
minutes: a day view of 24 cells is what a person reads, and the status page reads every
integration's week of hours in one query (`Store.fleet_buckets`), which at 5 minutes would
be twelve times the rows.

Cheap per run: the bucket rows are made from the result on the event loop, merged per
batch in memory (`merged`), and written by the run's own group-commit transaction as
additive upserts, so no bucket is read back and there is no second round trip; nothing of
a bucket stays in memory once its batch is written. Old buckets are dropped per
integration once a day, when its first run of a new day is written (`Pruning`), with a
delete on the primary key, not a scan of the table.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from healthd.model import Bucket, ProbeResult, Status
from healthd.store._retention import Retention

HOUR_SPAN = 60 * 60
DAY_SPAN = 24 * 60 * 60
SPANS = (HOUR_SPAN, DAY_SPAN)

# span, integration id, start (epoch seconds), ok, degraded, bad, latency total, latency max
BucketRow = tuple[int, str, int, int, int, int, float, float]
BUCKET_COLUMNS = (
    "span",
    "integration_id",
    "start",
    "ok",
    "degraded",
    "bad",
    "latency_total",
    "latency_max",
)


def bucket_rows(result: ProbeResult) -> list[BucketRow]:
    """The rows one run adds to: one per span. None for a run that proves nothing."""
    if result.status is Status.UNKNOWN:
        return []
    epoch = int(result.started_at.timestamp())
    ok = int(result.status is Status.OK)
    degraded = int(result.status is Status.DEGRADED)
    bad = int(result.status.is_bad)
    took = result.duration_seconds
    iid = result.integration_id
    return [(span, iid, epoch - epoch % span, ok, degraded, bad, took, took) for span in SPANS]


def merged(rows: Iterable[BucketRow]) -> list[BucketRow]:
    """The rows of a batch with one row per bucket: the same upsert does not run twice."""
    by_key: dict[tuple[int, str, int], BucketRow] = {}
    for row in rows:
        key = (row[0], row[1], row[2])
        had = by_key.get(key)
        by_key[key] = row if had is None else _add(had, row)
    return list(by_key.values())


def _add(had: BucketRow, row: BucketRow) -> BucketRow:
    """Two counts of one bucket as one (what the backends' upsert does)."""
    return (
        had[0],
        had[1],
        had[2],
        had[3] + row[3],
        had[4] + row[4],
        had[5] + row[5],
        had[6] + row[6],
        max(had[7], row[7]),
    )


def total(span: int, since: datetime, rows: Iterable[BucketRow]) -> Bucket:
    """Rows of one integration added up into one bucket starting at `since`."""
    ok = degraded = bad = 0
    latency_total = latency_max = 0.0
    for row in rows:
        ok, degraded, bad = ok + row[3], degraded + row[4], bad + row[5]
        latency_total, latency_max = latency_total + row[6], max(latency_max, row[7])
    return Bucket(
        start=since,
        span_seconds=span,
        ok=ok,
        degraded=degraded,
        bad=bad,
        latency_total=latency_total,
        latency_max=latency_max,
    )


def bucket(row: BucketRow) -> Bucket:
    return Bucket(
        start=datetime.fromtimestamp(row[2], UTC),
        span_seconds=row[0],
        ok=row[3],
        degraded=row[4],
        bad=row[5],
        latency_total=row[6],
        latency_max=row[7],
    )


def epoch(when: datetime) -> int:
    if when.tzinfo is None:
        raise ValueError(f"the store keeps aware datetimes only, got naive {when.isoformat()}")
    return int(when.timestamp())


def kept_seconds(retention: Retention, span: int) -> int:
    kept = retention.recent_history if span == HOUR_SPAN else retention.history
    return int(kept.total_seconds())


class Pruning:
    """Decides, per integration, when its old buckets are dropped: once per day of runs.

    Holds one day number per integration (bounded by the fleet, not by history).
    """

    def __init__(self, retention: Retention) -> None:
        self._retention = retention
        self._day: dict[str, int] = {}

    def due(self, rows: Iterable[BucketRow]) -> list[tuple[int, str, int]]:
        """(span, integration id, cutoff): drop that integration's buckets of that span
        starting at or before the cutoff, for each integration whose day turned."""
        out: list[tuple[int, str, int]] = []
        for row in rows:
            if row[0] != DAY_SPAN or self._day.get(row[1]) == row[2]:
                continue
            self._day[row[1]] = row[2]
            latest = row[2]
            for span in SPANS:
                out.append((span, row[1], latest - kept_seconds(self._retention, span)))
        return out

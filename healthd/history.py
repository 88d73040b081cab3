"""What an integration's history says: uptime shares, the cells of a window, incident lengths.

The store keeps run outcomes as hour and day buckets (`healthd.store._history`); this
module turns them into what the API, the status page and `healthd history` show, with one
arithmetic for all three, so the page's bar and the API can never disagree.

- A window (`24h`, `7d`, `30d`, `90d`) is a row of cells ending with the one `now` is
  in: 24 or 168 hours, or 30 or 90 UTC days. A cell with no run is a gap (no data), not
  downtime.
- The uptime share of a window is the runs that worked (ok or degraded) over all runs
  counted in it; a run that proved nothing (a probe that crashed) is not counted. None
  when nothing was counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from healthd.interfaces import Store
from healthd.model import Bucket, Incident, Transition
from healthd.store import DAY_SPAN, HOUR_SPAN


@dataclass(frozen=True, slots=True)
class Window:
    """A named stretch of history: `cells` buckets of `span` seconds."""

    name: str
    span: int
    cells: int

    def first(self, now: datetime) -> datetime:
        """The start of the window's first cell: the last cell holds `now`."""
        current = _floor(now, self.span)
        return current - timedelta(seconds=self.span * (self.cells - 1))


WINDOWS = {
    w.name: w
    for w in (
        Window("24h", HOUR_SPAN, 24),
        Window("7d", HOUR_SPAN, 24 * 7),
        Window("30d", DAY_SPAN, 30),
        Window("90d", DAY_SPAN, 90),
    )
}
# The shares the status page and `healthd history` show beside the 90-day bar.
SHARE_WINDOWS = ("24h", "7d", "30d")
BAR_WINDOW = "90d"
LATENCY_WINDOW = "24h"


def _floor(when: datetime, span: int) -> datetime:
    seconds = int(when.timestamp())
    return datetime.fromtimestamp(seconds - seconds % span, UTC)


def cells(window: Window, buckets: Sequence[Bucket], now: datetime) -> list[Bucket]:
    """One bucket per cell of `window`, oldest first; an empty one where nothing ran."""
    first = window.first(now)
    placed = column(window, buckets, now)
    return [
        b or Bucket(start=first + timedelta(seconds=window.span * n), span_seconds=window.span)
        for n, b in enumerate(placed)
    ]


def column(window: Window, buckets: Sequence[Bucket], now: datetime) -> list[Bucket | None]:
    """Each cell's bucket, oldest first, None where nothing ran: by position, not by a
    lookup of each cell's start (the status page places a whole fleet's)."""
    first = window.first(now)
    placed: list[Bucket | None] = [None] * window.cells
    for b in buckets:
        n = int((b.start - first).total_seconds()) // window.span
        if b.span_seconds == window.span and 0 <= n < window.cells:
            placed[n] = b
    return placed


def share(buckets: Sequence[Bucket]) -> float | None:
    """The uptime share of these buckets: runs that worked over runs counted."""
    runs = sum(b.runs for b in buckets)
    return sum(b.up for b in buckets) / runs if runs else None


def in_window(window: Window, buckets: Sequence[Bucket], now: datetime) -> list[Bucket]:
    """The buckets of `window`'s span that fall in it (a store read may hold more)."""
    first = window.first(now)
    return [b for b in buckets if b.span_seconds == window.span and b.start >= first]


def duration(incident: Incident, now: datetime) -> timedelta:
    """How long an occurrence lasted, or has lasted so far while it is open."""
    return (incident.resolved_at or now) - incident.opened_at


@dataclass(frozen=True, kw_only=True, slots=True)
class History:
    """One integration's history over one window, as `load` reads it from the store."""

    window: Window
    cells: list[Bucket]
    share: float | None
    transitions: list[Transition]


async def load(
    store: Store, integration_id: str, window: Window, now: datetime, transitions: int = 200
) -> History:
    """The window's cells and share, and the transitions in it (newest first)."""
    first = window.first(now)
    buckets = await store.buckets(integration_id, window.span, first)
    kept = await store.transitions(integration_id, limit=transitions)
    return History(
        window=window,
        cells=cells(window, buckets, now),
        share=share(buckets),
        transitions=[t for t in kept if t.at >= first],
    )


def describe(seconds: float) -> str:
    """A length of time as people say it: `45 s`, `12 min`, `3 h 5 min`, `2 d 4 h`."""
    total = int(seconds)
    if total < 60:
        return f"{total} s"
    minutes, hours, days = total // 60 % 60, total // 3600 % 24, total // 86400
    if total < 3600:
        return f"{total // 60} min"
    if days == 0:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{days} d {hours} h" if hours else f"{days} d"


def percent(value: float | None) -> str:
    """An uptime share as a person reads it; `no data` when nothing was counted."""
    if value is None:
        return "no data"
    if value == 1:
        return "100%"
    return f"{min(value * 100, 99.99):.2f}%"

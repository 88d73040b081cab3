"""Sliding-window counts in fixed-size time buckets: bounded memory, however many messages.

A window is read as the sum of the buckets it covers, so its memory is one counter per
bucket (per status, provider code and category seen in it), never one entry per message.
Buckets are aligned on the epoch: a message counted at 12:00:30 sits in the 12:00 minute
and leaves the 1-hour window when the 13:00 minute begins; the 24-hour window moves by
quarter hours. Pure: time comes in as an argument.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class Window(StrEnum):
    """The windows the ledger answers for (the API's `window=` values)."""

    QUARTER = "15m"
    HOUR = "1h"
    DAY = "24h"


@dataclass(frozen=True, slots=True)
class Key:
    """What one counter counts: messages with this status, provider code and category."""

    status: str
    provider_code: str | None
    category: str | None  # None: no error


# Each window is read from a ring of buckets: (bucket width, buckets in the window).
_MINUTE = 60
_QUARTER = 15 * 60
SPANS: dict[Window, tuple[int, int]] = {
    Window.QUARTER: (_MINUTE, 15),
    Window.HOUR: (_MINUTE, 60),
    Window.DAY: (_QUARTER, 96),
}
# The longest window: what the ledger rebuilds from the store after a restart.
LONGEST = timedelta(days=1)


class _Ring:
    """At most `size` buckets of `width` seconds, the newest ones; older ones are dropped."""

    __slots__ = ("_buckets", "_size", "_width")

    def __init__(self, width: int, size: int) -> None:
        self._width = width
        self._size = size
        self._buckets: dict[int, Counter[Key]] = {}

    def add(self, key: Key, at: datetime) -> None:
        index = int(at.timestamp()) // self._width
        bucket = self._buckets.get(index)
        if bucket is None:
            bucket = self._buckets[index] = Counter()
            if len(self._buckets) > self._size:
                newest = max(self._buckets)
                for old in [i for i in self._buckets if i <= newest - self._size]:
                    del self._buckets[old]
        bucket[key] += 1

    def total(self, buckets: int, now: datetime) -> Counter[Key]:
        newest = int(now.timestamp()) // self._width
        out: Counter[Key] = Counter()
        for index, bucket in self._buckets.items():
            if newest - buckets < index <= newest:
                out.update(bucket)
        return out


class Windows:
    """One integration's counts over every `Window`."""

    __slots__ = ("_rings",)

    def __init__(self) -> None:
        self._rings = {width: _Ring(width, size) for width, size in _ring_sizes().items()}

    def add(self, key: Key, at: datetime) -> None:
        for ring in self._rings.values():
            ring.add(key, at)

    def counts(self, window: Window, now: datetime) -> Counter[Key]:
        width, buckets = SPANS[window]
        return self._rings[width].total(buckets, now)


def _ring_sizes() -> dict[int, int]:
    """One ring per bucket width, as long as the longest window read from it."""
    sizes: dict[int, int] = {}
    for width, buckets in SPANS.values():
        sizes[width] = max(sizes.get(width, 0), buckets)
    return sizes

"""Sliding-window counts in fixed-size time buckets: bounded memory, however many messages.

A window is read as the sum of the buckets it covers, so its memory is one counter per
bucket (per status, provider code and category seen in it), never one entry per message.
Buckets are aligned on the epoch: a message counted at 12:00:30 sits in the 12:00 minute
and leaves the 1-hour window when the 13:00 minute begins; the 24-hour window moves by the
hour. Pure: time comes in as an argument.
"""

from __future__ import annotations

from array import array
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
_HOUR = 60 * 60
SPANS: dict[Window, tuple[int, int]] = {
    Window.QUARTER: (_MINUTE, 15),
    Window.HOUR: (_MINUTE, 60),
    Window.DAY: (_HOUR, 24),
}
# The longest window: what the ledger rebuilds from the store after a restart.
LONGEST = timedelta(days=1)


class _Ring:
    """`size` buckets of `width` seconds in fixed arrays: slot `i % size` holds bucket `i`.

    Memory is fixed per counter, whatever the traffic: one array of bucket numbers, and per
    counter (a `Key` of the integration, by its number) one array of counts. A bucket's
    slot is cleared when a newer bucket takes it; an outcome older than the bucket its slot
    holds is outside every window the ring serves and is not kept.
    """

    __slots__ = ("_counts", "_index", "_size", "_width")

    def __init__(self, width: int, size: int) -> None:
        self._width = width
        self._size = size
        self._index = array("q", [-1]) * size
        self._counts: list[array[int]] = []

    def add(self, key: int, at: datetime) -> None:
        index = int(at.timestamp()) // self._width
        slot = index % self._size
        held = self._index[slot]
        if held != index:
            if index < held:
                return
            self._index[slot] = index
            for counts in self._counts:
                counts[slot] = 0
        while len(self._counts) <= key:
            self._counts.append(array("I", bytes(4 * self._size)))
        self._counts[key][slot] += 1

    def total(self, buckets: int, now: datetime) -> Counter[int]:
        newest = int(now.timestamp()) // self._width
        out: Counter[int] = Counter()
        for slot, index in enumerate(self._index):
            if newest - buckets < index <= newest:
                for key, counts in enumerate(self._counts):
                    if counts[slot]:
                        out[key] += counts[slot]
        return out


class Windows:
    """One integration's counts over every `Window`, by `Key`."""

    __slots__ = ("_keys", "_numbers", "_rings")

    def __init__(self) -> None:
        self._rings = {width: _Ring(width, size) for width, size in _ring_sizes().items()}
        self._keys: list[Key] = []  # each counter's key, by its number
        self._numbers: dict[Key, int] = {}

    def add(self, key: Key, at: datetime) -> None:
        number = self._numbers.get(key)
        if number is None:
            number = self._numbers[key] = len(self._keys)
            self._keys.append(key)
        for ring in self._rings.values():
            ring.add(number, at)

    def counts(self, window: Window, now: datetime) -> Counter[Key]:
        width, buckets = SPANS[window]
        totals = self._rings[width].total(buckets, now)
        return Counter({self._keys[number]: n for number, n in totals.items()})


def _ring_sizes() -> dict[int, int]:
    """One ring per bucket width, as long as the longest window read from it."""
    sizes: dict[int, int] = {}
    for width, buckets in SPANS.values():
        sizes[width] = max(sizes.get(width, 0), buckets)
    return sizes

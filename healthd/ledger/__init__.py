"""The delivery ledger: every message's outcome, counted once, over sliding windows.

Outcomes arrive from provider callbacks (`healthd.api.callbacks`) and from polling. The
caller hands them over with `submit`, which only appends to a queue in memory and never
waits: a callback burst is answered at once while one writer task takes the queue in
batches to the store (`Store.record_deliveries`, one transaction a batch). The store says
which outcomes count (a replay, or a message's second final status, does not) and only
those reach the windows and the metrics, so a message is counted once wherever it came
from. After a restart the windows are rebuilt from the store's last 24 hours.

The queue is bounded (`limit`): above it `submit` refuses, and the callback answers 503
so the provider sends again later, rather than healthd growing without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import Callable, Sequence
from datetime import datetime

import structlog

from healthd.clock import Clock
from healthd.errors import StoreError
from healthd.interfaces import PollCursor, Store
from healthd.ledger.windows import LONGEST, Key, Window, Windows
from healthd.model import Category, DeliveryOutcome

__all__ = ["DeliveryLedger", "Key", "Window"]

log = structlog.get_logger("healthd.ledger")

BATCH = 1000
# The error categories an integration's error rate counts: not the audience's (recipient)
# nor the message text's (content), which never change health.
SENDER_SIDE = frozenset(
    c.value for c in (Category.ACCOUNT, Category.SENDER_CONFIG, Category.PROVIDER, Category.UNKNOWN)
)
LIMIT = 100_000
# After a failed write the batch is kept and written again this much later.
RETRY_SECONDS = 1.0
# Poll cursors kept (one per polling integration, about 100 bytes each); past it they are
# all dropped, which costs one whole-window hand-over per integration, not a lost outcome.
CURSORS_KEPT = 250_000


class DeliveryLedger:
    """`submit` outcomes; `run` writes them; `counts` reads an integration's windows.

    `on_counted` is told of every counted outcome, once, after its write committed (the
    metrics counters).
    """

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        on_counted: Callable[[DeliveryOutcome], None] | None = None,
        batch: int = BATCH,
        limit: int = LIMIT,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        self._store = store
        self._clock = clock
        self._on_counted = on_counted
        self._batch = batch
        self._limit = limit
        self._retry_seconds = retry_seconds
        self._queue: deque[DeliveryOutcome] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._windows: dict[str, Windows] = {}
        self._polled: dict[str, datetime] = {}  # see `DeliverySink`; kept in memory only

    async def load(self) -> int:
        """Rebuilds the windows from the store; returns how many outcomes it read."""
        counted = await self._store.counted_deliveries(self._clock.now() - LONGEST)
        for outcome in counted:
            self._window(outcome)  # counted before the restart: not a metric increment now
        return len(counted)

    def submit(
        self, outcomes: Sequence[DeliveryOutcome], *, cursor: PollCursor | None = None
    ) -> bool:
        """Queues the outcomes (all or none) and moves the poll's cursor on; False, and the
        cursor left where it was, when the queue is full."""
        if len(self._queue) + len(outcomes) > self._limit:
            return False
        if outcomes:
            self._queue.extend(outcomes)
            self._idle.clear()
            self._wake.set()
        if cursor is not None:
            if len(self._polled) >= CURSORS_KEPT and cursor.integration_id not in self._polled:
                self._polled.clear()  # integrations gone since: each polls its window whole once
            self._polled[cursor.integration_id] = cursor.until
        return True

    def polled_until(self, integration_id: str) -> datetime | None:
        return self._polled.get(integration_id)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def counts(self, integration_id: str, window: Window, now: datetime) -> Counter[Key]:
        windows = self._windows.get(integration_id)
        return windows.counts(window, now) if windows is not None else Counter()

    def error_rate(self, integration_id: str, now: datetime) -> float | None:
        """The share of the last hour's counted messages that failed on the sender's side
        (account, sender configuration, provider, unknown: the categories that change
        health); None without messages in the hour."""
        counts = self.counts(integration_id, Window.HOUR, now)
        total = sum(counts.values())
        if not total:
            return None
        return sum(n for key, n in counts.items() if key.category in SENDER_SIDE) / total

    async def run(self, stop: asyncio.Event) -> None:
        """Writes queued outcomes until `stop` is set and the queue is empty."""
        while True:
            if not self._queue:
                self._idle.set()
                if stop.is_set():
                    return
                self._wake.clear()
                waiter = asyncio.ensure_future(self._wake.wait())
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait((waiter, stopper), return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
                continue
            batch = [self._queue.popleft() for _ in range(min(self._batch, len(self._queue)))]
            try:
                counted = await self._store.record_deliveries(batch)
            except StoreError as exc:
                log.error("ledger_write_failed", outcomes=len(batch), error=str(exc))
                self._queue.extendleft(reversed(batch))  # kept, in order, for the next try
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._retry_seconds)
                if stop.is_set():
                    return  # the store is failing at shutdown: what is queued is lost
                continue
            for outcome in counted:
                self._window(outcome)
                if self._on_counted is not None:
                    self._on_counted(outcome)

    async def drained(self) -> None:
        """Returns once everything submitted so far is written (and counted)."""
        await self._idle.wait()

    def _window(self, outcome: DeliveryOutcome) -> None:
        windows = self._windows.get(outcome.integration_id)
        if windows is None:
            windows = self._windows[outcome.integration_id] = Windows()
        category = None if outcome.category is None else outcome.category.value
        windows.add(Key(outcome.status, outcome.provider_code, category), outcome.at)

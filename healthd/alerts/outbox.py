"""The outbox worker: delivers queued alert events until the receiver accepts them.

Rows are written by `Store.apply_alerts` in the same transaction as the incident change,
so an event is never lost between deciding and sending. This worker claims due rows
(`Store.claim_due`, one sender per row), sends each through its channel's `Notifier` within
`send_timeout`, and records the outcome:

- accepted: `mark_sent`;
- transient failure (429, 5xx, network, timeout): `mark_retry` after an exponential
  backoff with jitter, `backoff_initial * 2**attempts` capped at `backoff_max`, never
  sooner than the receiver's Retry-After;
- permanent failure (400, an unknown channel): `mark_rejected`, logged at error level with
  the dedup key and the receiver's message, after `max_attempts_400` tries.

Order per incident: events of one (channel, dedup key) go out in row order, so a resolve
never overtakes its trigger. Within a batch this worker sends them one after the other
and, when one fails, defers the later ones to the same retry time. Across batches it relies
on the store: `claim_due` must not hand out a row while an older row of the same channel
and dedup key is still pending or sending.

Every outcome is reported through `on_event(rule, action, outcome)` with outcome `sent`,
`retried` or `rejected`; the daemon counts these as `healthd_alert_events_total`. After a
batch, `on_delivered()` is awaited: the daemon refreshes the outbox gauges there, which
would otherwise move only when the rules are evaluated (and stay up after a delivery).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta

import structlog

from healthd.alerts.settings import OutboxSettings
from healthd.clock import Clock
from healthd.errors import DeliveryError
from healthd.interfaces import Notifier, Store
from healthd.model import OutboxItem

log = structlog.get_logger(__name__)

OnEvent = Callable[[str, str, str], None]
OnDelivered = Callable[[], Awaitable[None]]
_BATCH = 50
_CONCURRENCY = 8  # incidents delivered at once; PagerDuty allows ~120 events/min per key


class Outbox:
    def __init__(
        self,
        store: Store,
        notifiers: Mapping[str, Notifier],
        clock: Clock,
        settings: OutboxSettings,
        on_event: OnEvent | None = None,
        *,
        on_delivered: OnDelivered | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._notifiers = dict(notifiers)
        self._clock = clock
        self._settings = settings
        self._on_event = on_event
        self._on_delivered = on_delivered
        self._jitter = jitter
        self._slots = asyncio.Semaphore(_CONCURRENCY)

    def backoff(self, attempts: int, retry_after: float | None = None) -> timedelta:
        """Delay before the next try after `attempts` failed ones (0 for the first failure).

        Equal jitter: between half and all of the capped exponential delay, so retries of
        many events spread out without ever waiting longer than `backoff_max`.
        """
        initial, cap = self._settings.backoff_initial, self._settings.backoff_max
        delay = min(cap, initial * (1 << min(attempts, 32)))
        delay = delay * (0.5 + 0.5 * self._jitter())
        if retry_after is not None:
            delay = max(delay, timedelta(seconds=retry_after))
        return delay

    async def run_once(self) -> int:
        """Deliver the rows due now; return how many were handled."""
        items = await self._store.claim_due(self._clock.now(), limit=_BATCH)
        groups: dict[tuple[str, str], list[OutboxItem]] = defaultdict(list)
        for item in sorted(items, key=lambda i: i.id):
            groups[(item.channel, item.event.dedup_key)].append(item)
        await asyncio.gather(*(self._deliver_in_order(group) for group in groups.values()))
        if items and self._on_delivered is not None:
            await self._on_delivered()
        return len(items)

    async def run(self, stop: asyncio.Event, poll: float) -> None:
        """Deliver until `stop` is set, checking for due rows every `poll` seconds."""
        while not stop.is_set():
            try:
                handled = await self.run_once()
            except Exception:
                # The store may be briefly unavailable; the rows stay and are tried later.
                log.exception("outbox_run_failed")
                handled = 0
            if handled >= _BATCH:
                continue  # more may be due right now
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll):
                    await stop.wait()

    async def flush(self, timeout: float) -> int:  # noqa: ASYNC109 (a shutdown budget)
        """At shutdown: deliver what is due, for at most `timeout` seconds. Returns rows handled.

        Rows cut off in flight stay in `sending`; `Store.requeue_stale` returns them on the
        next start and they are sent again (PagerDuty deduplicates by key).
        """
        handled = 0
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while n := await self.run_once():
                    handled += n
        return handled

    async def _deliver_in_order(self, group: Sequence[OutboxItem]) -> None:
        for index, item in enumerate(group):
            async with self._slots:
                retry_at = await self._deliver(item)
            if retry_at is not None:
                note = f"waiting for outbox row {item.id} of the same incident"
                for later in group[index + 1 :]:
                    await self._store.mark_retry(later.id, retry_at, note)
                return

    async def _deliver(self, item: OutboxItem) -> datetime | None:
        """Send one row and record the outcome. Returns the retry time if it will be retried."""
        event = item.event
        notifier = self._notifiers.get(item.channel)
        try:
            if notifier is None:
                known = ", ".join(sorted(self._notifiers)) or "none"
                raise DeliveryError(
                    f"no notifier for channel {item.channel!r}; known: {known}", permanent=True
                )
            await self._send(notifier, item)
        except DeliveryError as exc:
            tries_left = item.attempts + 1 < self._settings.max_attempts_400
            if not exc.permanent or (notifier is not None and tries_left):
                return await self._retry(item, exc)
            await self._reject(item, str(exc))
            return None
        await self._store.mark_sent(item.id, self._clock.now())
        log.info(
            "alert_event_sent",
            channel=item.channel,
            dedup_key=event.dedup_key,
            action=event.action.value,
            attempts=item.attempts + 1,
        )
        self._report(item, "sent")
        return None

    async def _send(self, notifier: Notifier, item: OutboxItem) -> None:
        limit = self._settings.send_timeout.total_seconds()
        try:
            async with asyncio.timeout(limit):
                await notifier.send(item.event)
        except TimeoutError:
            raise DeliveryError(f"no answer within {limit:g}s", permanent=False) from None

    async def _retry(self, item: OutboxItem, exc: DeliveryError) -> datetime:
        delay = self.backoff(item.attempts, exc.retry_after)
        retry_at = self._clock.now() + delay
        await self._store.mark_retry(item.id, retry_at, str(exc))
        log.warning(
            "alert_event_retry",
            channel=item.channel,
            dedup_key=item.event.dedup_key,
            action=item.event.action.value,
            attempts=item.attempts + 1,
            retry_in_seconds=round(delay.total_seconds(), 3),
            error=str(exc),
        )
        self._report(item, "retried")
        return retry_at

    async def _reject(self, item: OutboxItem, error: str) -> None:
        await self._store.mark_rejected(item.id, error)
        log.error(
            "alert_event_rejected",
            channel=item.channel,
            dedup_key=item.event.dedup_key,
            action=item.event.action.value,
            rule=item.event.rule,
            error=error,
        )
        self._report(item, "rejected")

    def _report(self, item: OutboxItem, outcome: str) -> None:
        if self._on_event is not None:
            self._on_event(item.event.rule, item.event.action.value, outcome)

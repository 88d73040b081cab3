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

While the store cannot write, nothing reaches it: the engine puts the events it decided
into `Held` instead, and this worker sends them from memory, in order per incident and
after any row of the same incident it knows to be still waiting in the store (a resolve
never overtakes its trigger). When the store is back, the engine moves the held events
that are not being sent into the store (`Held.take`), so each event is in one place only
and is sent once. An outcome the store could not record (`mark_sent` on a full disk) is
kept and recorded before the next claim: the row stays `sending` meanwhile, so it is
neither claimed nor sent again.

Every outcome is reported through `on_event(rule, action, outcome)` with outcome `sent`,
`retried` or `rejected`; the daemon counts these as `healthd_alert_events_total`. After a
batch, `on_delivered()` is awaited: the daemon refreshes the outbox gauges there, which
would otherwise move only when the rules are evaluated (and stay up after a delivery).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

import structlog

from healthd.alerts.settings import OutboxSettings
from healthd.clock import Clock
from healthd.errors import DeliveryError, StoreError
from healthd.interfaces import Notifier, Store
from healthd.model import AlertEvent, OutboxItem, OutboxStatus

log = structlog.get_logger(__name__)

OnEvent = Callable[[str, str, str], None]
OnDelivered = Callable[[], Awaitable[None]]
_BATCH = 50
_CONCURRENCY = 8  # incidents delivered at once; PagerDuty allows ~120 events/min per key


@dataclass(kw_only=True, slots=True)
class _HeldEvent:
    channel: str
    event: AlertEvent
    attempts: int = 0
    next_attempt_at: datetime | None = None
    sending: bool = False


class Held:
    """Events decided while the store could not write them, in decision order."""

    def __init__(self) -> None:
        self._events: list[_HeldEvent] = []

    def __len__(self) -> int:
        return len(self._events)

    def by_channel(self) -> dict[str, int]:
        return dict(Counter(h.channel for h in self._events))

    def hold(self, events: Sequence[tuple[str, AlertEvent]]) -> None:
        self._events.extend(_HeldEvent(channel=c, event=e) for c, e in events)

    def take(self) -> list[tuple[str, AlertEvent]]:
        """Removes and returns the events not being sent, except those of an incident whose
        earlier event is being sent (they follow it, from memory)."""
        busy = {(h.channel, h.event.dedup_key) for h in self._events if h.sending}
        taken = [h for h in self._events if (h.channel, h.event.dedup_key) not in busy]
        self._events = [h for h in self._events if (h.channel, h.event.dedup_key) in busy]
        return [(h.channel, h.event) for h in taken]

    def give_back(self, events: Sequence[tuple[str, AlertEvent]]) -> None:
        """Returns taken events (their write failed) ahead of anything held since."""
        self._events[:0] = [_HeldEvent(channel=c, event=e) for c, e in events]

    def due(self, now: datetime) -> list[list[_HeldEvent]]:
        """Per incident, the held events in order, when its first is due and not sending."""
        groups: dict[tuple[str, str], list[_HeldEvent]] = defaultdict(list)
        for h in self._events:
            groups[(h.channel, h.event.dedup_key)].append(h)
        return [
            g
            for g in groups.values()
            if not g[0].sending and (g[0].next_attempt_at is None or g[0].next_attempt_at <= now)
        ]

    def done(self, held: _HeldEvent) -> None:
        self._events.remove(held)


@dataclass(frozen=True, slots=True)
class _Outcome:
    """How one send went: `retry_at` set when it will be tried again, `error` when not sent."""

    status: OutboxStatus
    error: str | None = None
    retry_at: datetime | None = None


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
        held: Held | None = None,
    ) -> None:
        self._store = store
        self.held = held if held is not None else Held()
        # Store rows of an incident this worker knows are unfinished (claimed, then retried).
        self._waiting: defaultdict[tuple[str, str], set[int]] = defaultdict(set)
        # Outcomes the store could not record yet, in order.
        self._unrecorded: list[Callable[[], Awaitable[None]]] = []
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
        """Deliver the rows and held events due now; return how many were handled.

        A store that cannot record or claim does not stop the held events: they are sent,
        and the store's rows wait (its health reports the error, once per episode).
        """
        items: list[OutboxItem] = []
        with contextlib.suppress(StoreError):
            await self._record_unrecorded()
            items = await self._store.claim_due(self._clock.now(), limit=_BATCH)
        groups: dict[tuple[str, str], list[OutboxItem]] = defaultdict(list)
        for item in sorted(items, key=lambda i: i.id):
            groups[(item.channel, item.event.dedup_key)].append(item)
        held = [
            g
            for g in self.held.due(self._clock.now())
            if not self._waiting[_key(g[0].channel, g[0].event)]
        ]
        await asyncio.gather(
            *(self._deliver_in_order(group) for group in groups.values()),
            *(self._deliver_held(group) for group in held),
        )
        if (items or held) and self._on_delivered is not None:
            await self._on_delivered()
        return len(items) + sum(len(g) for g in held)

    async def _record_unrecorded(self) -> None:
        while self._unrecorded:
            await self._unrecorded[0]()
            del self._unrecorded[0]

    async def _record(self, write: Callable[[], Awaitable[None]]) -> None:
        """Records an outcome in the store, or keeps it for the next run (see the module)."""
        if not self._unrecorded:
            try:
                await write()
                return
            except StoreError:
                pass
        self._unrecorded.append(write)

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
            key = _key(item.channel, item.event)
            async with self._slots:
                outcome = await self._attempt(item.channel, item.event, item.attempts)
            if outcome.status is OutboxStatus.SENT:
                await self._record(partial(self._store.mark_sent, item.id, self._clock.now()))
            elif outcome.retry_at is not None:
                await self._record(
                    partial(self._store.mark_retry, item.id, outcome.retry_at, outcome.error or "")
                )
            else:
                await self._record(partial(self._store.mark_rejected, item.id, outcome.error or ""))
            if outcome.retry_at is None:
                self._waiting[key].discard(item.id)
                continue
            self._waiting[key].update(later.id for later in group[index:])
            note = f"waiting for outbox row {item.id} of the same incident"
            for later in group[index + 1 :]:
                await self._record(
                    partial(self._store.mark_retry, later.id, outcome.retry_at, note)
                )
            return

    async def _deliver_held(self, group: Sequence[_HeldEvent]) -> None:
        """Sends an incident's held events in order, from memory (the store cannot write)."""
        for held in group:
            held.sending = True
            try:
                async with self._slots:
                    outcome = await self._attempt(held.channel, held.event, held.attempts)
            finally:
                held.sending = False
            if outcome.retry_at is None:
                self.held.done(held)
                continue
            held.attempts += 1
            held.next_attempt_at = outcome.retry_at
            return

    async def _attempt(self, channel: str, event: AlertEvent, attempts: int) -> _Outcome:
        """Sends one event; logs and reports the outcome, which the caller records."""
        notifier = self._notifiers.get(channel)
        try:
            if notifier is None:
                known = ", ".join(sorted(self._notifiers)) or "none"
                raise DeliveryError(
                    f"no notifier for channel {channel!r}; known: {known}", permanent=True
                )
            await self._send(notifier, event)
        except DeliveryError as exc:
            tries_left = attempts + 1 < self._settings.max_attempts_400
            if not exc.permanent or (notifier is not None and tries_left):
                return self._retry(channel, event, attempts, exc)
            return self._reject(channel, event, str(exc))
        log.info(
            "alert_event_sent",
            channel=channel,
            dedup_key=event.dedup_key,
            action=event.action.value,
            attempts=attempts + 1,
        )
        self._report(event, "sent")
        return _Outcome(OutboxStatus.SENT)

    async def _send(self, notifier: Notifier, event: AlertEvent) -> None:
        limit = self._settings.send_timeout.total_seconds()
        try:
            async with asyncio.timeout(limit):
                await notifier.send(event)
        except TimeoutError:
            raise DeliveryError(f"no answer within {limit:g}s", permanent=False) from None

    def _retry(
        self, channel: str, event: AlertEvent, attempts: int, exc: DeliveryError
    ) -> _Outcome:
        delay = self.backoff(attempts, exc.retry_after)
        log.warning(
            "alert_event_retry",
            channel=channel,
            dedup_key=event.dedup_key,
            action=event.action.value,
            attempts=attempts + 1,
            retry_in_seconds=round(delay.total_seconds(), 3),
            error=str(exc),
        )
        self._report(event, "retried")
        return _Outcome(OutboxStatus.PENDING, str(exc), self._clock.now() + delay)

    def _reject(self, channel: str, event: AlertEvent, error: str) -> _Outcome:
        log.error(
            "alert_event_rejected",
            channel=channel,
            dedup_key=event.dedup_key,
            action=event.action.value,
            rule=event.rule,
            error=error,
        )
        self._report(event, "rejected")
        return _Outcome(OutboxStatus.REJECTED, error)

    def _report(self, event: AlertEvent, outcome: str) -> None:
        if self._on_event is not None:
            self._on_event(event.rule, event.action.value, outcome)


def _key(channel: str, event: AlertEvent) -> tuple[str, str]:
    return (channel, event.dedup_key)

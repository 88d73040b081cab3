from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import structlog

from healthd.alerts.outbox import Held, Outbox
from healthd.alerts.settings import OutboxSettings
from healthd.errors import DeliveryError
from healthd.model import AlertEvent, EventAction, OutboxStatus
from tests.alerts.conftest import T0, make_event

SETTINGS = OutboxSettings(backoff_initial=timedelta(seconds=5), backoff_max=timedelta(minutes=5))


class ScriptedNotifier:
    """Answers each send with the next scripted outcome (None = accepted); records events."""

    def __init__(self, *outcomes: Exception | None, channel: str = "pagerduty") -> None:
        self.channel = channel
        self.outcomes = list(outcomes)
        self.sent: list[AlertEvent] = []

    async def send(self, event: AlertEvent) -> None:
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome
        self.sent.append(event)

    async def close(self) -> None:
        pass


class HangingNotifier:
    channel = "pagerduty"

    async def send(self, event: AlertEvent) -> None:
        await asyncio.Event().wait()

    async def close(self) -> None:
        pass


def transient(retry_after: float | None = None) -> DeliveryError:
    return DeliveryError("PagerDuty answered 500", permanent=False, retry_after=retry_after)


def recorder() -> tuple[list[tuple[str, str, str]], Callable[[str, str, str], None]]:
    seen: list[tuple[str, str, str]] = []
    return seen, lambda rule, action, outcome: seen.append((rule, action, outcome))


def outbox(store, notifier, clock, settings=SETTINGS, **kw) -> Outbox:
    return Outbox(store, {notifier.channel: notifier}, clock, settings, jitter=lambda: 1.0, **kw)


async def test_transient_failure_is_retried_after_backoff_then_sent(store, clock):
    notifier = ScriptedNotifier(transient())
    seen, on_event = recorder()
    box = outbox(store, notifier, clock, on_event=on_event)
    row = store.enqueue("pagerduty", make_event(), T0)

    assert await box.run_once() == 1
    assert store.status(row) is OutboxStatus.PENDING
    assert store.rows[row].next_attempt_at == T0 + timedelta(seconds=5)
    assert await box.run_once() == 0  # not due yet

    clock.advance(5)
    assert await box.run_once() == 1
    assert store.status(row) is OutboxStatus.SENT
    assert [e.dedup_key for e in notifier.sent] == [make_event().dedup_key]
    assert seen == [
        ("bridge_unreachable", "trigger", "retried"),
        ("bridge_unreachable", "trigger", "sent"),
    ]


async def test_permanent_failure_is_rejected_and_logged_with_dedup_key(store, clock):
    error = DeliveryError("PagerDuty answered 400: Event object is invalid", permanent=True)
    notifier = ScriptedNotifier(error)
    seen, on_event = recorder()
    row = store.enqueue("pagerduty", make_event(), T0)

    with structlog.testing.capture_logs() as logs:
        await outbox(store, notifier, clock, on_event=on_event).run_once()

    assert store.status(row) is OutboxStatus.REJECTED
    assert store.rows[row].last_error == str(error)
    assert seen == [("bridge_unreachable", "trigger", "rejected")]
    [entry] = [e for e in logs if e["event"] == "alert_event_rejected"]
    assert entry["log_level"] == "error"
    assert entry["dedup_key"] == make_event().dedup_key
    assert "Event object is invalid" in entry["error"]


async def test_permanent_failure_is_tried_max_attempts_400_times(store, clock):
    permanent = DeliveryError("PagerDuty answered 400", permanent=True)
    notifier = ScriptedNotifier(permanent, permanent)
    box = outbox(store, notifier, clock, OutboxSettings(max_attempts_400=2))
    row = store.enqueue("pagerduty", make_event(), T0)

    await box.run_once()
    assert store.status(row) is OutboxStatus.PENDING
    clock.advance(timedelta(minutes=5))
    await box.run_once()
    assert store.status(row) is OutboxStatus.REJECTED


async def test_unknown_channel_is_rejected_naming_the_channel(store, clock):
    seen, on_event = recorder()
    row = store.enqueue("webhook:acme", make_event(), T0)

    await outbox(store, ScriptedNotifier(), clock, on_event=on_event).run_once()

    assert store.status(row) is OutboxStatus.REJECTED
    assert "no notifier for channel 'webhook:acme'" in (store.rows[row].last_error or "")
    assert seen == [("bridge_unreachable", "trigger", "rejected")]


class FailsFirstFor(ScriptedNotifier):
    """Fails the first `times` sends of one incident; accepts everything else."""

    def __init__(self, dedup_key: str, times: int) -> None:
        super().__init__()
        self.dedup_key, self.times = dedup_key, times

    async def send(self, event: AlertEvent) -> None:
        if event.dedup_key == self.dedup_key and self.times:
            self.times -= 1
            raise transient()
        self.sent.append(event)


async def test_resolve_waits_for_its_trigger(store, clock):
    bridge = make_event().dedup_key
    notifier = FailsFirstFor(bridge, times=2)
    box = outbox(store, notifier, clock)
    trigger = store.enqueue("pagerduty", make_event(EventAction.TRIGGER), T0)
    resolve = store.enqueue("pagerduty", make_event(EventAction.RESOLVE), T0)
    other = store.enqueue("pagerduty", make_event(dedup_key="healthd/egress_down"), T0)

    await box.run_once()  # the trigger fails; the other incident is not held up
    clock.advance(timedelta(minutes=10))
    await box.run_once()  # the trigger fails again; its resolve still waits
    assert store.status(resolve) is OutboxStatus.PENDING
    clock.advance(timedelta(minutes=10))
    while await box.run_once():
        pass

    assert [(e.dedup_key, e.action) for e in notifier.sent] == [
        ("healthd/egress_down", EventAction.TRIGGER),
        (bridge, EventAction.TRIGGER),
        (bridge, EventAction.RESOLVE),
    ]
    assert {store.status(r) for r in (trigger, resolve, other)} == {OutboxStatus.SENT}


async def test_resolve_claimed_with_its_trigger_is_deferred_when_the_trigger_fails(clock):
    # A store that hands out both rows of one incident in the same batch.
    from tests.alerts.conftest import OutboxStoreDouble

    class EagerStore(OutboxStoreDouble):
        async def claim_due(self, now, limit=50):
            due = [
                r
                for r in sorted(self.rows.values(), key=lambda r: r.id)
                if r.status is OutboxStatus.PENDING and r.next_attempt_at <= now
            ]
            for r in due:
                self._update(r.id, status=OutboxStatus.SENDING)
            return [self.rows[r.id] for r in due]

    store = EagerStore()
    notifier = ScriptedNotifier(transient())
    trigger = store.enqueue("pagerduty", make_event(EventAction.TRIGGER), T0)
    resolve = store.enqueue("pagerduty", make_event(EventAction.RESOLVE), T0)

    await outbox(store, notifier, clock).run_once()

    assert notifier.sent == []
    assert store.rows[resolve].next_attempt_at == store.rows[trigger].next_attempt_at
    assert "waiting for outbox row" in (store.rows[resolve].last_error or "")


def test_backoff_doubles_from_initial_and_is_capped(store, clock):
    box = outbox(store, ScriptedNotifier(), clock)
    delays = [box.backoff(n).total_seconds() for n in range(9)]
    assert delays == [5, 10, 20, 40, 80, 160, 300, 300, 300]


def test_backoff_jitter_stays_between_half_and_all_of_the_delay(store, clock):
    low = Outbox(store, {}, clock, SETTINGS, jitter=lambda: 0.0).backoff(3)
    high = Outbox(store, {}, clock, SETTINGS, jitter=lambda: 1.0).backoff(3)
    assert (low, high) == (timedelta(seconds=20), timedelta(seconds=40))


def test_backoff_honours_a_longer_retry_after(store, clock):
    box = outbox(store, ScriptedNotifier(), clock)
    assert box.backoff(0, retry_after=120) == timedelta(seconds=120)
    assert box.backoff(4, retry_after=1) == timedelta(seconds=80)


async def test_retry_after_from_the_receiver_sets_the_next_attempt(store, clock):
    row = store.enqueue("pagerduty", make_event(), T0)
    await outbox(store, ScriptedNotifier(transient(retry_after=90)), clock).run_once()
    assert store.rows[row].next_attempt_at == T0 + timedelta(seconds=90)


async def test_a_hanging_send_is_cut_off_and_retried(store, clock):
    settings = OutboxSettings(send_timeout=timedelta(milliseconds=50))
    seen, on_event = recorder()
    row = store.enqueue("pagerduty", make_event(), T0)

    async with asyncio.timeout(10):
        await outbox(store, HangingNotifier(), clock, settings, on_event=on_event).run_once()

    assert store.status(row) is OutboxStatus.PENDING
    assert "no answer within 0.05s" in (store.rows[row].last_error or "")
    assert seen == [("bridge_unreachable", "trigger", "retried")]


async def test_flush_delivers_what_is_due(store, clock):
    notifier = ScriptedNotifier()
    for n in range(3):
        store.enqueue("pagerduty", make_event(dedup_key=f"healthd/egress_down/{n}"), T0)

    assert await outbox(store, notifier, clock).flush(5) == 3
    assert len(notifier.sent) == 3


async def test_flush_returns_within_its_budget_when_a_send_hangs(store, clock):
    settings = OutboxSettings(send_timeout=timedelta(hours=1))
    row = store.enqueue("pagerduty", make_event(), T0)

    async with asyncio.timeout(10):
        handled = await outbox(store, HangingNotifier(), clock, settings).flush(0.1)

    assert handled == 0
    assert store.status(row) is OutboxStatus.SENDING  # requeue_stale returns it on restart


class SignallingNotifier(ScriptedNotifier):
    def __init__(self) -> None:
        super().__init__()
        self.delivered = asyncio.Event()

    async def send(self, event: AlertEvent) -> None:
        await super().send(event)
        self.delivered.set()


async def test_run_delivers_until_stopped(store, clock):
    notifier = SignallingNotifier()
    store.enqueue("pagerduty", make_event(), T0)
    stop = asyncio.Event()
    box = outbox(store, notifier, clock)

    async with asyncio.timeout(10):
        task = asyncio.create_task(box.run(stop, poll=0.01))
        await notifier.delivered.wait()
        stop.set()
        await task

    assert len(notifier.sent) == 1


async def test_a_held_event_is_sent_from_memory_once_and_leaves_the_queue(store, clock):
    notifier = ScriptedNotifier()
    box = outbox(store, notifier, clock)
    box.held.hold([("pagerduty", make_event())])

    await box.run_once()
    await box.run_once()

    assert [e.action for e in notifier.sent] == [EventAction.TRIGGER]
    assert len(box.held) == 0 and store.rows == {}


async def test_a_held_resolve_waits_for_its_trigger_still_retried_in_the_store(store, clock):
    notifier = ScriptedNotifier(transient())
    box = outbox(store, notifier, clock)
    store.enqueue("pagerduty", make_event(), T0)
    await box.run_once()  # the trigger fails and waits in the store
    box.held.hold([("pagerduty", make_event(EventAction.RESOLVE))])

    await box.run_once()  # not due yet: the resolve must not overtake it
    assert notifier.sent == []
    clock.advance(timedelta(minutes=5))
    await box.run_once()
    await box.run_once()

    assert [e.action for e in notifier.sent] == [EventAction.TRIGGER, EventAction.RESOLVE]


def test_taking_held_events_leaves_an_incident_whose_event_is_being_sent():
    held = Held()
    held.hold([("pagerduty", make_event()), ("pagerduty", make_event(dedup_key="other"))])
    held.due(T0)[0][0].sending = True

    taken = held.take()

    assert [e.dedup_key for _, e in taken] == ["other"] and len(held) == 1

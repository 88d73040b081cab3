"""Rules, outbox and PagerDuty together: a bridge outage is paged once and resolved once,
even when PagerDuty answers 500 and 429 in between."""

from __future__ import annotations

from datetime import timedelta

from healthd.alerts.outbox import Outbox
from healthd.alerts.pagerduty import PagerDutyNotifier
from healthd.alerts.rules import AlertPlan
from healthd.alerts.settings import AlertingSettings
from healthd.secrets import Secret
from tests.alerts.conftest import T0, OutboxStoreDouble
from tests.alerts.test_rules import BRIDGE_KEY, OK, bridge_down, bridge_world


def queue(store: OutboxStoreDouble, plan: AlertPlan) -> None:
    """What `Store.apply_alerts` does with the plan's events."""
    for channel, event in plan.events:
        store.enqueue(channel, event, T0)


async def test_bridge_outage_pages_once_and_resolves_once_through_pagerduty_errors(server, clock):
    settings = AlertingSettings.model_validate(
        {
            "pagerduty": {
                "routing_key": Secret("k" * 32),
                "events_url": server.url,
                "ca_bundle": server.ca_bundle,
            }
        }
    )
    assert settings.pagerduty is not None
    pagerduty = PagerDutyNotifier(settings.pagerduty)
    store = OutboxStoreDouble()
    outcomes: list[tuple[str, str, str]] = []
    box = Outbox(
        store,  # type: ignore[arg-type]  # a double of the outbox part of Store
        {"pagerduty": pagerduty},
        clock,
        settings.outbox,
        on_event=lambda *o: outcomes.append(o),
    )
    world = bridge_world(config=settings)
    limited = (429, {"status": "throttled"}, {"Retry-After": "30"})
    server.api.answers += [(500, {"status": "error"}, {}), limited, limited]
    try:
        bridge_down(world)
        for minute in (5, 11, 12, 13):  # pages once, past page_after
            clock.set(T0 + timedelta(minutes=minute))
            queue(store, world.evaluate(clock.now()))
            await box.run_once()
        world.set("bridge-dc1", OK)
        clock.advance(timedelta(minutes=1))
        queue(store, world.evaluate(clock.now()))
        await box.run_once()
        clock.advance(timedelta(minutes=10))
        await box.run_once()
    finally:
        await pagerduty.close()

    assert len(server.api.received) == 5  # 500, 429 twice (one SDK retry), trigger, resolve
    accepted = [(b["event_action"], b["dedup_key"]) for b in server.api.received[3:]]
    assert accepted == [("trigger", BRIDGE_KEY), ("resolve", BRIDGE_KEY)]
    assert outcomes == [
        ("bridge_unreachable", "trigger", "retried"),
        ("bridge_unreachable", "trigger", "retried"),
        ("bridge_unreachable", "trigger", "sent"),
        ("bridge_unreachable", "resolve", "sent"),
    ]

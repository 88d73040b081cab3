"""Rules, the real stores, the outbox and PagerDuty together: a bridge outage is paged once
and resolved once, through PagerDuty errors and through a restart of the daemon."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest

from healthd.alerts.outbox import Outbox
from healthd.alerts.pagerduty import PagerDutyNotifier
from healthd.alerts.rules import evaluate
from healthd.alerts.settings import AlertingSettings
from healthd.clock import FakeClock
from healthd.interfaces import Store
from healthd.secrets import Secret
from healthd.store import MemoryStore, SQLiteStore
from tests.alerts.conftest import T0, Server
from tests.alerts.test_rules import BRIDGE_KEY, OK, World, bridge_down, bridge_world

Outcome = tuple[str, str, str]


class Daemon:
    """The alerting half of the daemon: evaluate, record in the store, deliver."""

    def __init__(self, store: Store, world: World, clock: FakeClock, pagerduty: PagerDutyNotifier):
        self.store, self.world, self.clock = store, world, clock
        self.outcomes: list[Outcome] = []
        self.outbox = Outbox(
            store,
            {"pagerduty": pagerduty},
            clock,
            world.settings.outbox,
            on_event=lambda *o: self.outcomes.append(o),
        )

    async def tick(self) -> None:
        now = self.clock.now()
        plan = evaluate(
            integrations=self.world.integrations,
            states=self.world.states,
            results=self.world.results,
            open_incidents=await self.store.open_incidents(),
            settings=self.world.settings,
            now=now,
        )
        await self.store.apply_alerts(
            opened=plan.opened, resolved=plan.resolved, events=plan.events, now=now
        )
        await self.outbox.run_once()


def alerting(server: Server) -> AlertingSettings:
    return AlertingSettings.model_validate(
        {
            "pagerduty": {
                "routing_key": Secret("k" * 32),
                "events_url": server.url,
                "ca_bundle": server.ca_bundle,
            }
        }
    )


@pytest.fixture
async def pagerduty(server: Server) -> AsyncIterator[PagerDutyNotifier]:
    settings = alerting(server).pagerduty
    assert settings is not None
    notifier = PagerDutyNotifier(settings)
    try:
        yield notifier
    finally:
        await notifier.close()


@pytest.fixture
async def open_store(tmp_path: Path) -> AsyncIterator[Callable[[str], Awaitable[Store]]]:
    """Opens stores by kind; all are closed at the end. Two sqlite stores share one file."""
    opened: list[Store] = []

    async def make(kind: str) -> Store:
        store: Store = MemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "h.db")
        await store.open()
        opened.append(store)
        return store

    try:
        yield make
    finally:
        for store in reversed(opened):
            await store.close()


def delivered(server: Server) -> list[tuple[str, str]]:
    return [(b["event_action"], b["dedup_key"]) for b in server.api.received]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_outage_pages_once_and_resolves_once_through_pagerduty_errors(
    server, pagerduty, open_store, kind
):
    clock = FakeClock(T0)
    world = bridge_world(config=alerting(server))
    daemon = Daemon(await open_store(kind), world, clock, pagerduty)
    limited = (429, {"status": "throttled"}, {"Retry-After": "30"})
    server.api.answers += [(500, {"status": "error"}, {}), limited, limited]

    bridge_down(world)
    for minute in (5, 11, 12, 13):
        clock.set(T0 + timedelta(minutes=minute))
        await daemon.tick()
    world.set("bridge-dc1", OK)
    for minute in (14, 15):
        clock.set(T0 + timedelta(minutes=minute))
        await daemon.tick()

    # 500, then 429 twice (each one a retry of the outbox's: none inside the SDK), then accepted.
    assert delivered(server)[3:] == [("trigger", BRIDGE_KEY), ("resolve", BRIDGE_KEY)]
    assert daemon.outcomes == [
        ("bridge_unreachable", "trigger", "retried"),
        ("bridge_unreachable", "trigger", "retried"),
        ("bridge_unreachable", "trigger", "retried"),
        ("bridge_unreachable", "trigger", "sent"),
        ("bridge_unreachable", "resolve", "sent"),
    ]
    assert await daemon.store.outbox_pending() == {}


async def test_restart_mid_outage_neither_repages_nor_loses_the_resolve(
    server, pagerduty, open_store
):
    clock = FakeClock(T0)
    world = bridge_world(config=alerting(server))
    bridge_down(world)
    first = Daemon(await open_store("sqlite"), world, clock, pagerduty)
    clock.set(T0 + timedelta(minutes=11))
    await first.tick()
    # The first daemon is killed, not stopped: its store is never closed.

    second = Daemon(await open_store("sqlite"), world, clock, pagerduty)
    await second.store.requeue_stale()
    for minute in (12, 20):
        clock.set(T0 + timedelta(minutes=minute))
        await second.tick()
    world.set("bridge-dc1", OK)
    clock.set(T0 + timedelta(minutes=21))
    await second.tick()

    assert delivered(server) == [("trigger", BRIDGE_KEY), ("resolve", BRIDGE_KEY)]

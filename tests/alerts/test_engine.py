"""The alert engine reads the fleet through a snapshot callable, not through the runner.

Alerts sit below the runner (tests/test_layout.py), so the engine is built here from a
plain function over a `World` and a memory store: no runner, no probes.
"""

from __future__ import annotations

from datetime import timedelta

from healthd.alerts.engine import AlertEngine
from healthd.clock import FakeClock
from healthd.store import MemoryStore
from tests.alerts.test_rules import BRIDGE_KEY, T0, World, bridge_down, bridge_world, sent


def engine_over(world: World, clock: FakeClock, store: MemoryStore) -> AlertEngine:
    return AlertEngine(
        snapshot=lambda: (world.integrations, world.states, world.results),
        store=store,
        settings=world.settings,
        clock=clock,
    )


async def test_the_engine_pages_for_what_its_snapshot_shows_and_records_it() -> None:
    world, clock, store = bridge_world(), FakeClock(T0 + timedelta(minutes=11)), MemoryStore()
    bridge_down(world)
    engine = engine_over(world, clock, store)
    assert await engine.load() == []

    plan = await engine.evaluate()

    assert sent(plan) == [("trigger", BRIDGE_KEY)]
    assert [i.dedup_key for i in await store.open_incidents()] == [BRIDGE_KEY]
    view = engine.alert_view()
    assert view.open_incidents == {"bridge_unreachable": 1}
    assert view.pending == {"pagerduty": 1}


async def test_every_evaluation_reads_a_fresh_snapshot() -> None:
    world, clock, store = bridge_world(), FakeClock(T0 + timedelta(minutes=11)), MemoryStore()
    engine = engine_over(world, clock, store)
    await engine.load()
    assert (await engine.evaluate()).empty

    bridge_down(world)

    assert sent(await engine.evaluate()) == [("trigger", BRIDGE_KEY)]

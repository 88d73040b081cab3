"""What a `Tracker` step costs: it derives again only what changed.

tests/alerts/test_incremental.py proves its plans are a full evaluation's; these say what
it does not redo (counted calls, never timings).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from healthd.alerts.rules import Fleet, Tracker, rule_inputs
from healthd.alerts.rules._base import Condition, Scene, View
from healthd.alerts.rules.integration_failing import IntegrationFailing
from healthd.model import Thresholds
from tests.alerts.test_rules import AUTH, HTTP_500, OK, T0, TIMEOUT, World, integration
from tests.alerts.test_rules import settings as alerting

QUICK = Thresholds(failure_threshold=1, success_threshold=1, page_after=timedelta(minutes=3))


def counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records the integration of every `IntegrationFailing.condition_of` call."""
    seen: list[str] = []
    real: Callable[..., Condition | None] = IntegrationFailing.condition_of

    def spy(self: IntegrationFailing, view: View, scene: Scene, settings: Any) -> Condition | None:
        seen.append(view.integration.id)
        return real(self, view, scene, settings)

    monkeypatch.setattr(IntegrationFailing, "condition_of", spy)
    return seen


def failing_world(n: int) -> World:
    world = World(alerting())
    for i in range(n):
        world.add(integration(f"t{i:03d}", "twilio", f"tenant{i}", page=True), AUTH)
    return world


def test_a_step_derives_again_only_the_integration_that_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = failing_world(50)
    tracker = Tracker(Fleet.of(world.integrations, world.states, world.results), world.settings)
    opened = tracker.step(open_incidents={}, now=T0).opened
    seen = counting(monkeypatch)
    world.set("t007", HTTP_500)  # still failing, for another reason
    tracker.fleet.update("t007", rule_inputs(world.states["t007"], world.results["t007"]))
    world.set("t008", OK)  # recovered: quiet, nothing to derive, its incident resolves
    tracker.fleet.update("t008", rule_inputs(world.states["t008"], world.results["t008"]))
    plan = tracker.step(open_incidents={i.dedup_key: i for i in opened}, now=T0)
    assert seen == ["t007"]
    assert (plan.opened, plan.resolved) == ((), (("healthd/integration_failing/t008", T0),))


def test_a_step_with_nothing_changed_derives_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    world = failing_world(50)
    tracker = Tracker(Fleet.of(world.integrations, world.states, world.results), world.settings)
    opened = tracker.step(open_incidents={}, now=T0).opened
    seen = counting(monkeypatch)
    plan = tracker.step(open_incidents={i.dedup_key: i for i in opened}, now=T0)
    assert (seen, plan.empty) == ([], True)


def test_a_bridge_edge_that_no_longer_holds_is_skipped() -> None:
    """The bridge answers before its page_after: its edge in the heap is stale."""
    world = World(alerting())
    world.integrations["bridge"] = integration("bridge", "imessage_bridge", thresholds=QUICK)
    world.run("bridge", TIMEOUT, at=T0)
    tracker = Tracker(Fleet.of(world.integrations, world.states, world.results), world.settings)
    tracker.step(open_incidents={}, now=T0)
    edge = T0 + QUICK.page_after + timedelta(microseconds=1)
    assert tracker.next_edge(now=T0) == edge
    world.run("bridge", OK, at=T0 + timedelta(minutes=1))
    tracker.fleet.update("bridge", rule_inputs(world.states["bridge"], world.results["bridge"]))
    tracker.step(open_incidents={}, now=T0 + timedelta(minutes=1))
    assert tracker.next_edge(now=T0 + timedelta(minutes=1)) is None

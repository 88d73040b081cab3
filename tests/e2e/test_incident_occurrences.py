"""A reopened incident end to end: each occurrence is its own record with its own trigger and
resolve, and the status API lists both (the real daemon, the simulator's bridge and
PagerDuty, time on a FakeClock)."""

from __future__ import annotations

import pytest

from healthd.clock import FakeClock
from healthd.sim.app import SimulatorThread
from healthd.sim.client import SimClient
from tests.conftest import base_config, bridge, running_daemon
from tests.e2e.test_bridge_paging import DEDUP, bridge_for, drained, get_json

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("secrets_env")]


async def test_a_bridge_down_twice_is_two_incidents_each_triggered_and_resolved(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    clock = FakeClock()
    async with running_daemon(base_config(sim, [bridge(sim)]), clock=clock) as d:
        for _ in range(2):
            await bridge_for(d, clock, sim_client, "offline", 12)
            await bridge_for(d, clock, sim_client, "ok", 4)
        await drained(d)
        listed = await get_json(d, "/api/v1/incidents")

    occurrences = [i for i in listed["incidents"] if i["dedup_key"] == DEDUP]
    assert len(occurrences) == 2 and not any(i["open"] for i in occurrences)
    later, earlier = occurrences
    assert earlier["resolved_at"] < later["opened_at"]
    actions = [
        e["body"]["event_action"] for e in sim_client.pagerduty_events() if e["dedup_key"] == DEDUP
    ]
    assert actions == ["trigger", "resolve", "trigger", "resolve"]

"""The outbox gauges follow the outbox: a delivery lowers them without a rule evaluation."""

from __future__ import annotations

from datetime import timedelta

import pytest

from healthd.clock import FakeClock
from healthd.sim.app import SimulatorThread
from healthd.sim.client import SimClient
from tests.conftest import base_config, bridge, running_daemon
from tests.e2e.test_bridge_paging import bridge_for, eventually, triggers

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("secrets_env")]


async def test_pending_gauge_falls_when_the_outbox_delivers_between_evaluations(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    clock = FakeClock()
    async with running_daemon(base_config(sim, [bridge(sim)]), clock=clock) as d:
        sim_client.set_scenario("pagerduty", "server_error")
        await bridge_for(d, clock, sim_client, "offline", 12)
        assert d.engine.alert_view().pending == {"pagerduty": 1}

        # From here on nothing evaluates the rules (the scheduler is off): only the
        # outbox worker, delivering once PagerDuty is back, can move the gauge.
        sim_client.set_scenario("pagerduty", "ok")
        clock.advance(timedelta(minutes=5))  # past the longest backoff
        await eventually(lambda: triggers(sim_client))
        await eventually(lambda: d.engine.alert_view().pending == {})

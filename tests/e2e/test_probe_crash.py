"""A probe that crashes inside healthd, on the real daemon: the run proves nothing.

The bridge is down and paged; then its probe raises (a bug, injected into the registered
probe class) for more runs than `success_threshold`. Before the fix the crash counted as
a good run and resolved the page after two of them.
"""

from __future__ import annotations

from typing import Any

import pytest

from healthd.clock import FakeClock
from healthd.model import Status
from healthd.registry import probe_class
from healthd.sim.app import SimulatorThread
from healthd.sim.client import SimClient
from tests.conftest import base_config, bridge, running_daemon
from tests.e2e.test_bridge_paging import (
    BRIDGE,
    DEDUP,
    bridge_for,
    drained,
    eventually,
    get_json,
    metrics,
    probe,
    resolves,
    triggers,
)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("secrets_env")]


class ProbeBug(RuntimeError):
    pass


async def test_a_crashing_probe_neither_resolves_an_open_page_nor_clears_the_timer(
    sim: SimulatorThread, sim_client: SimClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    async with running_daemon(base_config(sim, [bridge(sim)]), clock=clock) as d:
        await bridge_for(d, clock, sim_client, "offline", 12)
        await eventually(lambda: triggers(sim_client))
        unreachable_since = d.runner.states[BRIDGE].unreachable_since

        with monkeypatch.context() as m:

            async def findings(self: Any, *args: Any) -> Any:
                raise ProbeBug("a bug in the probe")

            m.setattr(probe_class("imessage_bridge"), "findings", findings)
            for _ in range(3):  # more than success_threshold (2)
                await probe(d, clock)
            await drained(d)
            view = await get_json(d, f"/api/v1/integrations/{BRIDGE}")
            text = await metrics(d)

        assert resolves(sim_client) == []
        assert [i.dedup_key for i in await d.store.open_incidents()] == [DEDUP]
        state = d.runner.states[BRIDGE]
        assert state.status is Status.UNREACHABLE
        assert state.unreachable_since == unreachable_since
        assert [f["code"] for f in view["findings"]] == ["healthd.probe_error"]
        assert view["last_result_status"] == "unknown"
        assert 'healthd_probe_errors_total{provider="imessage_bridge",reason="crashed"} 3.0' in text

        # The probe fixed, the bridge back: the page resolves once, as it should.
        await bridge_for(d, clock, sim_client, "ok", 3)
        await eventually(lambda: resolves(sim_client))
        await drained(d)
        assert [e["body"]["dedup_key"] for e in resolves(sim_client)] == [DEDUP]

"""The bridge rule end to end: the real daemon, the simulator's bridge and PagerDuty over TLS.

Time is a FakeClock and the scheduler is off: each `probe()` is one scheduled run, so the
ten-minute rule is tested in milliseconds. The simulator's PagerDuty is the receiver.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from healthd.clock import FakeClock
from healthd.daemon import Daemon
from healthd.model import IncidentQuery
from healthd.sim.app import SimulatorThread
from healthd.sim.client import SimClient
from tests.conftest import ADMIN_TOKEN, base_config, bridge, running_daemon

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("secrets_env")]

BRIDGE = "bridge-dc1"
DEDUP = f"healthd/bridge_unreachable/{BRIDGE}"


async def eventually(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (value := predicate()):
            await asyncio.sleep(0.05)
        return value


async def probe(daemon: Daemon, clock: FakeClock, minutes: float = 1.0) -> None:
    """One scheduled turn: time moves on, the probe runs, the rules run."""
    clock.advance(timedelta(minutes=minutes))
    await daemon.runner.run_once(BRIDGE)
    await daemon.engine.evaluate()


async def bridge_for(
    daemon: Daemon, clock: FakeClock, sim_client: SimClient, scenario: str, minutes: int
) -> None:
    """The bridge in `scenario` for `minutes` scheduled turns, one a minute."""
    sim_client.set_scenario("imessage_bridge", scenario, target="dc1")
    for _ in range(minutes):
        await probe(daemon, clock)


def triggers(sim_client: SimClient) -> list[dict[str, Any]]:
    return [e for e in sim_client.pagerduty_events() if e["body"]["event_action"] == "trigger"]


def resolves(sim_client: SimClient) -> list[dict[str, Any]]:
    return [e for e in sim_client.pagerduty_events() if e["body"]["event_action"] == "resolve"]


async def get_json(daemon: Daemon, path: str) -> Any:
    async with (
        aiohttp.ClientSession() as s,
        s.get(daemon.url + path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as r,
    ):
        return await r.json()


async def drained(daemon: Daemon, timeout: float = 10.0) -> None:
    """Wait until the outbox has recorded every event as delivered.

    With the scheduler off, events are queued only by the evaluations a test awaits, so
    once none is pending every event the rules ever queued has reached the receiver.
    """
    await daemon.outbox.run_once()  # what is due now, without waiting for the worker's poll
    async with asyncio.timeout(timeout):
        while True:
            await daemon.engine.refresh_view()
            if not daemon.engine.alert_view().pending.get("pagerduty"):
                return
            await asyncio.sleep(0.05)


async def metrics(daemon: Daemon) -> str:
    async with aiohttp.ClientSession() as s, s.get(daemon.url + "/metrics") as r:
        return await r.text()


async def test_bridge_unreachable_longer_than_page_after_triggers_once(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    clock = FakeClock()
    async with running_daemon(base_config(sim, [bridge(sim)]), clock=clock) as d:
        await probe(d, clock)
        # Twelve minutes of a bridge that does not answer, then three more.
        await bridge_for(d, clock, sim_client, "offline", 12)
        await eventually(lambda: triggers(sim_client))
        await bridge_for(d, clock, sim_client, "offline", 3)
        # Every event the rules queued is delivered, so a wrong second trigger would be here.
        await drained(d)

        sent = triggers(sim_client)
        assert len(sent) == 1
        assert sent[0]["body"]["dedup_key"] == DEDUP
        summary = sent[0]["body"]["payload"]["summary"]
        assert "unreachable for 1" in summary and BRIDGE in summary
        assert sent[0]["body"]["payload"]["severity"] == "critical"


async def test_bridge_answering_again_resolves_the_incident_once(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    clock = FakeClock()
    async with running_daemon(base_config(sim, [bridge(sim)]), clock=clock) as d:
        await bridge_for(d, clock, sim_client, "offline", 12)
        await eventually(lambda: triggers(sim_client))
        await bridge_for(d, clock, sim_client, "ok", 4)
        await eventually(lambda: resolves(sim_client))
        await drained(d)

        assert [e["body"]["dedup_key"] for e in resolves(sim_client)] == [DEDUP]
        incidents = sim_client.pagerduty_incidents()
        assert [(i["trigger_count"], i["resolve_count"]) for i in incidents] == [(1, 1)]


async def test_bridge_unreachable_shorter_than_page_after_never_pages(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    clock = FakeClock()
    async with running_daemon(base_config(sim, [bridge(sim)]), clock=clock) as d:
        # Nine minutes: inside the ten-minute allowance; then back for good.
        await bridge_for(d, clock, sim_client, "offline", 9)
        await bridge_for(d, clock, sim_client, "ok", 12)
        await d.outbox.run_once()

        assert sim_client.pagerduty_events() == []
        assert (await d.store.incident_history(IncidentQuery())) == []


async def test_one_answer_during_an_outage_does_not_restart_the_ten_minute_timer(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    """Flapping, as the README documents: one good answer in a run of misses is not recovery."""
    clock = FakeClock()
    async with running_daemon(base_config(sim, [bridge(sim)]), clock=clock) as d:
        await bridge_for(d, clock, sim_client, "offline", 6)
        await bridge_for(d, clock, sim_client, "ok", 1)
        await bridge_for(d, clock, sim_client, "offline", 5)

        await eventually(lambda: triggers(sim_client))
        assert len(triggers(sim_client)) == 1


@pytest.mark.parametrize("outage", ["rate_limited", "server_error", "down"])
async def test_event_waits_in_the_outbox_while_pagerduty_fails_then_arrives(
    sim: SimulatorThread, sim_client: SimClient, outage: str
) -> None:
    clock = FakeClock()
    async with running_daemon(base_config(sim, [bridge(sim)]), clock=clock) as d:
        sim_client.set_scenario("pagerduty", outage)
        await bridge_for(d, clock, sim_client, "offline", 12)
        await d.outbox.run_once()
        await d.engine.refresh_view()
        await eventually(lambda: d.engine.alert_view().pending.get("pagerduty") == 1)
        waiting = 'healthd_alert_outbox_pending{channel="pagerduty"} 1.0'
        async with asyncio.timeout(10):  # the /metrics rendering may be up to a second old
            while waiting not in await metrics(d):
                await asyncio.sleep(0.2)
        assert sim_client.pagerduty_events() == []

        sim_client.set_scenario("pagerduty", "ok")
        clock.advance(timedelta(minutes=5))  # past the longest backoff
        await eventually(lambda: triggers(sim_client))
        await drained(d)

        assert len(triggers(sim_client)) == 1


async def test_hanging_bridge_is_cut_off_at_its_timeout_while_another_probe_completes(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    doc = base_config(
        sim,
        [bridge(sim, "dc1", timeout="2s"), bridge(sim, "dc2")],
        defaults={"timeout": "5s"},
    )
    sim_client.set_scenario("imessage_bridge", "hanging", target="dc1")
    async with running_daemon(doc) as d:
        hanging = asyncio.create_task(d.runner.run_once("bridge-dc1"))
        healthy = asyncio.create_task(d.runner.run_once("bridge-dc2"))
        first, _ = await asyncio.wait({hanging, healthy}, return_when=asyncio.FIRST_COMPLETED)
        cut_off = await asyncio.wait_for(hanging, timeout=10)

    assert first == {healthy}
    assert healthy.result().status.value == "ok"
    assert cut_off.status.value == "unreachable"
    assert [f.code for f in cut_off.findings] in (["healthd.probe_timeout"], ["bridge.timeout"])


@pytest.mark.parametrize(
    ("scenario", "code", "status"),
    [
        ("html", "bridge.proxy_error", "unreachable"),
        ("truncated", "bridge.bad_response", "failing"),
        ("auth_fail", "bridge.auth_invalid", "failing"),
        ("server_error", "bridge.bad_response", "failing"),
        ("signed_out", "bridge.imessage_signed_out", "failing"),
        ("helper_disconnected", "bridge.private_api_disconnected", "degraded"),
        ("backlog", "bridge.backlog", "degraded"),
    ],
)
async def test_bridge_answer_becomes_a_clear_finding_in_the_status_api(
    sim: SimulatorThread, sim_client: SimClient, scenario: str, code: str, status: str
) -> None:
    sim_client.set_scenario("imessage_bridge", scenario, target="dc1")
    async with running_daemon(base_config(sim, [bridge(sim)])) as d:
        await d.runner.run_once(BRIDGE)
        view = await get_json(d, f"/api/v1/integrations/{BRIDGE}")

    problems = view["problems"]
    assert [p["code"] for p in problems] == [code]
    assert problems[0]["status"] == status
    assert problems[0]["remediation"]
    assert view["last_result_status"] == status


async def test_the_backlog_is_checked_at_most_every_backlog_every_and_shown_between(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    clock = FakeClock(datetime.now(UTC))  # the simulated Mac reports real times
    sim_client.set_scenario("imessage_bridge", "backlog", target="dc1")
    async with running_daemon(base_config(sim, [bridge(sim)]), clock=clock) as d:
        first = await d.runner.run_once(BRIDGE)
        sim_client.set_scenario("imessage_bridge", "ok", target="dc1")
        clock.advance(timedelta(minutes=1))
        between = await d.runner.run_once(BRIDGE)
        clock.advance(timedelta(minutes=1))
        after = await d.runner.run_once(BRIDGE)

    def backlog(result: Any) -> str:
        return next(f.status.value for f in result.findings if f.check == "backlog")

    assert [backlog(r) for r in (first, between, after)] == ["degraded", "degraded", "ok"]

"""Dependencies between rules, end to end against the simulator's PagerDuty.

- Every provider unreachable at once by network errors is healthd's own egress: one
  `egress_down` page, no page per provider or integration, neither while it lasts nor
  when the network returns and the integrations recover one by one.
- The bridge page names the tenants whose iMessages would sit: those without a Twilio
  integration that works.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from healthd.clock import FakeClock
from healthd.daemon import Daemon
from healthd.sim.app import SimulatorThread
from healthd.sim.client import SimClient
from tests.conftest import base_config, running_daemon
from tests.scenarios.fleet import (
    Member,
    bridge_member,
    google_member,
    sendgrid_member,
    set_fleet_env,
    twilio_member,
)
from tests.scenarios.support import delivered

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("secrets_env")]

DEFAULTS = {
    "interval": "60s",
    "timeout": "500ms",  # a hanging provider costs each sweep half a second
    "jitter": "0s",
    "failure_threshold": 3,
    "success_threshold": 2,
}


async def sweep(d: Daemon, clock: FakeClock, members: list[Member]) -> None:
    clock.advance(timedelta(minutes=1))
    await d.runner.run_many([m.id for m in members])
    await d.engine.evaluate()
    await d.outbox.run_once()


def pages(sim_client: SimClient) -> list[tuple[str, int, int]]:
    return [
        (i["dedup_key"], i["trigger_count"], i["resolve_count"])
        for i in sim_client.pagerduty_incidents()
    ]


def trigger_payload(sim_client: SimClient, dedup_key: str) -> dict[str, Any]:
    (payload,) = [
        e["body"]["payload"]
        for e in sim_client.pagerduty_events()
        if e["dedup_key"] == dedup_key and e["body"]["event_action"] == "trigger"
    ]
    return dict(payload)


async def test_every_provider_unreachable_at_once_is_one_egress_page_and_nothing_else(
    sim: SimulatorThread, sim_client: SimClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    members = [
        bridge_member(sim),
        *(twilio_member(sim, t) for t in ("acme", "globex", "initech")),
        *(sendgrid_member(sim, t) for t in ("acme", "platform")),
        google_member(sim, "globex"),
    ]
    set_fleet_env(monkeypatch, members)
    clock = FakeClock()
    doc = base_config(sim, [m.config for m in members], defaults=DEFAULTS)
    async with running_daemon(doc, clock=clock) as d:
        for _ in range(2):
            await sweep(d, clock, members)
        # The network goes: the bridge's proxy hangs up, every API and status page hangs.
        sim_client.set_scenario("imessage_bridge", "offline")
        for provider in ("twilio", "sendgrid", "google", "statuspage"):
            sim_client.set_scenario(provider, "hanging")
        for _ in range(15):  # past the bridge's page_after and every N=3
            await sweep(d, clock, members)
        await delivered(d)
        during = pages(sim_client)
        egress = trigger_payload(sim_client, "healthd/egress_down")

        for provider in ("imessage_bridge", "twilio", "sendgrid", "google", "statuspage"):
            sim_client.set_scenario(provider, "ok")
        for _ in range(4):
            await sweep(d, clock, members)
        await delivered(d)

    assert during == [("healthd/egress_down", 1, 0)]
    assert egress["severity"] == "critical"
    assert egress["custom_details"]["providers"] == [
        "google",
        "imessage_bridge",
        "sendgrid",
        "twilio",
    ]
    assert pages(sim_client) == [("healthd/egress_down", 1, 1)]


async def test_the_bridge_page_lists_the_tenants_without_a_working_twilio(
    sim: SimulatorThread, sim_client: SimClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    acme, globex = twilio_member(sim, "acme"), twilio_member(sim, "globex")
    members = [bridge_member(sim), acme, globex, sendgrid_member(sim, "initech")]
    set_fleet_env(monkeypatch, members)
    clock = FakeClock()
    doc = base_config(sim, [m.config for m in members], defaults=DEFAULTS)
    async with running_daemon(doc, clock=clock) as d:
        sim_client.set_scenario("twilio", "revoked_token", target=globex.target)
        sim_client.set_scenario("imessage_bridge", "offline", target="dc1")
        for _ in range(12):
            await sweep(d, clock, members)
        await delivered(d)

    bridge_page = trigger_payload(sim_client, "healthd/bridge_unreachable/bridge-dc1")
    # globex's Twilio is revoked, initech has none; acme's works and falls back to SMS.
    assert bridge_page["custom_details"]["tenants_without_sms_fallback"] == ["globex", "initech"]
    assert [key for key, _, _ in pages(sim_client)] == ["healthd/bridge_unreachable/bridge-dc1"]

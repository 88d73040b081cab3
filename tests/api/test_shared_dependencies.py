"""The platform's bridge on every workspace's page: its status and what it means for them.

With the bridge down, a workspace token's list carries it under `shared_dependencies`,
with its status, since when and the impact on that workspace (a workspace with a working
Twilio has an SMS fallback; one without has messages that just sit), and nothing of the
platform's internals: no id, host, base URL, findings or other workspaces.
"""

from __future__ import annotations

from typing import Any

import pytest

from healthd.sim.app import SimulatorThread
from healthd.sim.client import SimClient
from healthd.sim.fixtures import integration_entry
from healthd.sim.twilio import DEFAULT_TOKEN
from tests.api.conftest import ACME_TOKEN, GLOBEX_TOKEN, call, fleet_config
from tests.conftest import running_daemon

pytestmark = pytest.mark.usefixtures("secrets_env")


def twilio_for_globex(sim: SimulatorThread) -> dict[str, Any]:
    return integration_entry(
        "twilio",
        sim.http_url,
        "AC" + "1" * 32,
        id="twilio-globex",
        tenant="globex",
        credentials={
            "account_sid": "env:HEALTHD_TEST_TWILIO_SID",
            "auth_token": "env:HEALTHD_TEST_TWILIO_TOKEN",
        },
    )


async def lists_with_the_bridge_down(
    sim: SimulatorThread, sim_client: SimClient, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    monkeypatch.setenv("HEALTHD_TEST_TWILIO_SID", "AC" + "1" * 32)
    monkeypatch.setenv("HEALTHD_TEST_TWILIO_TOKEN", DEFAULT_TOKEN)
    doc = fleet_config(sim, failure_threshold=1)
    doc["integrations"].append(twilio_for_globex(sim) | {"failure_threshold": 1})
    sim_client.set_scenario("imessage_bridge", "offline", target="dc1")
    async with running_daemon(doc) as d:
        await d.runner.run_many(list(d.runner.integrations))
        return {
            "acme": (await call(d.url, "GET", "/api/v1/integrations", token=ACME_TOKEN)).json,
            "globex": (await call(d.url, "GET", "/api/v1/integrations", token=GLOBEX_TOKEN)).json,
            "admin": (await call(d.url, "GET", "/api/v1/integrations")).json,
            "base_url": d.runner.integrations["bridge-dc1"].base_url,
        }


async def test_a_down_bridge_shows_on_every_workspaces_list_with_its_meaning(
    sim: SimulatorThread, sim_client: SimClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    lists = await lists_with_the_bridge_down(sim, sim_client, monkeypatch)

    acme, globex = lists["acme"]["shared_dependencies"], lists["globex"]["shared_dependencies"]
    assert [(d["name"], d["status"]) for d in acme] == [("iMessage bridge", "unreachable")]
    assert acme[0]["since"] is not None and acme[0]["unreachable_since"] is not None
    assert "just sit" in acme[0]["impact"]  # acme has no Twilio
    assert "just sit" not in globex[0]["impact"] and "Twilio" in globex[0]["impact"]
    assert lists["admin"]["shared_dependencies"] == []


async def test_a_shared_dependency_shows_no_platform_internals(
    sim: SimulatorThread, sim_client: SimClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    lists = await lists_with_the_bridge_down(sim, sim_client, monkeypatch)

    text = str(lists["acme"])
    for internal in ("bridge-dc1", "platform", "127.0.0.1", lists["base_url"], "globex"):
        assert internal not in text
    assert {i["tenant"] for i in lists["acme"]["integrations"]} == {"acme"}

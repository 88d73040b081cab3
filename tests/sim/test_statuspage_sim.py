"""The status-page simulator serves pages shaped like real Statuspage ones (PROVIDERS.md A8)."""

from __future__ import annotations

from typing import Any

import aiohttp

from healthd.sim import Simulator


async def _page(sim: Simulator, http: aiohttp.ClientSession, target: str) -> dict[str, Any]:
    async with http.get(f"{sim.http_url}/status/{target}/api/v2/summary.json") as response:
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body


async def test_twilio_page_has_dozens_of_components_in_carrier_and_country_groups(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    page = await _page(sim, http, "twilio")
    components = page["components"]
    groups = {c["name"]: c for c in components if c["group"]}
    assert len(components) > 40
    assert {"Messaging", "US Carriers", "SMS Delivery: Europe"} <= set(groups)
    by_id = {c["id"]: c for c in components}
    for group in groups.values():
        assert group["components"] and all(
            by_id[i]["group_id"] == group["id"] for i in group["components"]
        )
    assert set(page) == {"page", "status", "components", "incidents", "scheduled_maintenances"}


async def test_an_incident_marks_its_component_and_rolls_up_into_its_group(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    sim.provider("statuspage").set_scenario(
        "incident", "twilio", {"component": "AT&T - SMS", "component_status": "major_outage"}
    )
    page = await _page(sim, http, "twilio")
    status = {c["name"]: c["status"] for c in page["components"]}
    assert status["AT&T - SMS"] == status["US Carriers"] == "major_outage"
    assert status["SMS"] == "operational"
    (incident,) = page["incidents"]
    assert [c["name"] for c in incident["components"]] == ["AT&T - SMS"]


async def test_maintenance_is_listed_as_scheduled_not_as_an_incident(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    sim.provider("statuspage").set_scenario("maintenance", "twilio", {"component": "SMS"})
    page = await _page(sim, http, "twilio")
    assert page["incidents"] == []
    assert page["scheduled_maintenances"][0]["status"] == "in_progress"
    assert {c["name"]: c["status"] for c in page["components"]}["SMS"] == "under_maintenance"

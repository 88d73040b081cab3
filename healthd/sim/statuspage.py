"""Atlassian Statuspage `summary.json` for the providers that publish one (Twilio, SendGrid).

Each page is a target: `/status/<target>/api/v2/summary.json`, so a probe's status-page URL
is `<sim>/status/twilio/api/v2/summary.json`. Scenarios:
- `ok`: every component operational, no incident.
- `incident`: an open incident on one component (params: `component`, default "SMS";
  `impact` minor|major|critical, default major; `component_status`, default partial_outage).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from healthd.sim.base import ProviderSim

COMPONENTS = {
    "twilio": [
        "SMS",
        "MMS",
        "Programmable Messaging API",
        "REST API",
        "Toll-Free SMS",
        "A2P 10DLC",
    ],
    "sendgrid": ["Mail Sending", "API", "Event Webhook", "Email Activity", "SMTP"],
}


class StatusPageSim(ProviderSim):
    name = "statuspage"
    scenarios = frozenset({"ok", "incident"})

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/status/{target}/api/v2/summary.json", self.summary)]

    async def summary(self, request: web.Request) -> web.Response:
        target = request.match_info["target"]
        sc = await self.delay(target)
        now = datetime.now(UTC).isoformat()
        components = [
            _component(target, i, name, "operational", now)
            for i, name in enumerate(COMPONENTS.get(target, ["API"]))
        ]
        incidents: list[dict[str, Any]] = []
        indicator, description = "none", "All Systems Operational"
        if sc.name == "incident":
            wanted = str(sc.params.get("component", "SMS")).lower()
            hit = [c for c in components if c["name"].lower() == wanted] or components[:1]
            for c in hit:
                c["status"] = sc.params.get("component_status", "partial_outage")
            impact = sc.params.get("impact", "major")
            indicator, description = impact, "Partial System Outage"
            incidents.append(
                {
                    "id": f"inc-{target}-1",
                    "name": sc.params.get("name", f"Delayed {hit[0]['name']} delivery"),
                    "status": "investigating",
                    "impact": impact,
                    "shortlink": f"https://stspg.io/{target}1",
                    "created_at": now,
                    "updated_at": now,
                    "monitoring_at": None,
                    "resolved_at": None,
                    "page_id": f"page-{target}",
                    "incident_updates": [],
                    "components": hit,
                }
            )
        body = {
            "page": {
                "id": f"page-{target}",
                "name": target.capitalize(),
                "url": f"https://status.{target}.com",
                "time_zone": "Etc/UTC",
                "updated_at": now,
            },
            "status": {"indicator": indicator, "description": description},
            "components": components,
            "incidents": incidents,
            "scheduled_maintenances": [],
        }
        return web.json_response(body)


def _component(page: str, i: int, name: str, status: str, now: str) -> dict[str, Any]:
    return {
        "id": f"{page}-c{i}",
        "name": name,
        "status": status,
        "created_at": now,
        "updated_at": now,
        "position": i + 1,
        "description": None,
        "showcase": False,
        "start_date": None,
        "group_id": None,
        "page_id": f"page-{page}",
        "group": False,
        "only_show_if_degraded": False,
    }

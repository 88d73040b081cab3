"""Atlassian Statuspage `summary.json` for the providers that publish one (Twilio, SendGrid).

Each page is a target: `/status/<target>/api/v2/summary.json`, so a probe's status-page URL
is `<sim>/status/twilio/api/v2/summary.json`. A page has the shape of a real one: dozens of
components, most inside groups (a group is a component with `group: true` and the ids of
its `components`; each member names it in `group_id`). Twilio's page lists carriers and
destination countries beside its messaging products, so an incident on one carrier sits on
the same page as an outage of SMS itself (PROVIDERS.md A8).

Scenarios (params in brackets; `component` is a component's exact name):
- `ok`: every component operational, no incident.
- `incident`: an open incident on one component [`component`, default the page's first
  product ("SMS", "Mail Sending"); `component_status` operational | degraded_performance |
  partial_outage | major_outage, default partial_outage; `impact` minor|major|critical,
  default major; `name`, the incident's title].
- `maintenance`: maintenance in progress on one component [`component`, as above]: the
  component is `under_maintenance` and the page lists the maintenance.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from healthd.sim.base import ProviderSim

# (group name or None for top-level components, member names). The first member of the
# first entry is each page's default incident component.
PAGES: dict[str, list[tuple[str | None, list[str]]]] = {
    "twilio": [
        (
            "Messaging",
            [
                "SMS",
                "MMS",
                "Programmable Messaging API",
                "Toll-Free SMS",
                "Short Code SMS",
                "A2P 10DLC Registration",
                "WhatsApp",
            ],
        ),
        (None, ["REST API", "Console", "Webhooks", "Authentication"]),
        ("Voice", ["Programmable Voice", "SIP Trunking", "Voice Insights"]),
        (
            "US Carriers",
            [
                "AT&T - SMS",
                "AT&T - MMS",
                "T-Mobile - SMS",
                "T-Mobile - MMS",
                "Verizon Wireless - SMS",
                "Verizon Wireless - MMS",
                "US Cellular - SMS",
                "Google Voice - SMS",
            ],
        ),
        ("Canadian Carriers", ["Bell - SMS", "Rogers - SMS", "Telus - SMS", "Videotron - SMS"]),
        (
            "SMS Delivery: Europe",
            [
                "United Kingdom SMS",
                "Germany SMS",
                "France SMS",
                "Spain SMS",
                "Italy SMS",
                "Netherlands SMS",
                "Poland SMS",
            ],
        ),
        (
            "SMS Delivery: Asia Pacific",
            ["Australia SMS", "India SMS", "Japan SMS", "Singapore SMS", "Philippines SMS"],
        ),
        (
            "SMS Delivery: Latin America",
            ["Brazil SMS", "Mexico SMS", "Argentina SMS", "Colombia SMS", "Chile SMS"],
        ),
    ],
    "sendgrid": [
        (None, ["Mail Sending", "API", "SMTP", "Event Webhook", "Email Activity"]),
        (None, ["Marketing Campaigns", "Inbound Parse", "Web Application"]),
        ("Mailbox Providers", ["Gmail", "Microsoft Outlook", "Yahoo Mail", "Apple iCloud Mail"]),
    ],
}

COMPONENT_STATUSES = frozenset(
    {"operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"}
)


def component_id(page: str, name: str) -> str:
    """A Statuspage-like id (12 lowercase characters), stable for a page and name."""
    return hashlib.md5(f"{page}:{name}".encode()).hexdigest()[:12]


class StatusPageSim(ProviderSim):
    name = "statuspage"
    scenarios = frozenset({"ok", "incident", "maintenance"})

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/status/{target}/api/v2/summary.json", self.summary)]

    async def summary(self, request: web.Request) -> web.Response:
        target = request.match_info["target"]
        sc = await self.delay(target)
        now = datetime.now(UTC).isoformat()
        components = _components(target, now)
        members = [c for c in components if not c["group"]]
        incidents: list[dict[str, Any]] = []
        maintenances: list[dict[str, Any]] = []
        indicator, description = "none", "All Systems Operational"
        if sc.name in ("incident", "maintenance"):
            wanted = str(sc.params.get("component", members[0]["name"]))
            hit = [c for c in members if c["name"] == wanted] or members[:1]
            maintenance = sc.name == "maintenance"
            status = (
                "under_maintenance"
                if maintenance
                else str(sc.params.get("component_status", "partial_outage"))
            )
            if status not in COMPONENT_STATUSES:
                raise web.HTTPBadRequest(text=f"unknown component_status {status!r}")
            for c in hit:
                c["status"] = status
            _roll_up_groups(components)
            impact = "maintenance" if maintenance else str(sc.params.get("impact", "major"))
            if maintenance:
                indicator, description = "maintenance", "Service Under Maintenance"
            else:
                indicator, description = impact, "Partial System Outage"
            title = "Scheduled maintenance" if maintenance else "Delayed delivery"
            event = {
                "id": f"inc-{target}-1",
                "name": sc.params.get("name", f"{title}: {hit[0]['name']}"),
                "status": "in_progress" if maintenance else "investigating",
                "impact": impact,
                "shortlink": f"https://stspg.io/{target}1",
                "created_at": now,
                "updated_at": now,
                "monitoring_at": None,
                "resolved_at": None,
                "page_id": f"page-{target}",
                "incident_updates": [],
                "components": [dict(c) for c in hit],
            }
            if maintenance:
                event |= {"scheduled_for": now, "scheduled_until": now}
                maintenances.append(event)
            else:
                incidents.append(event)
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
            "scheduled_maintenances": maintenances,
        }
        return web.json_response(body)


def _components(page: str, now: str) -> list[dict[str, Any]]:
    """The page's components in page order: each group, then its members."""
    components: list[dict[str, Any]] = []
    for group, names in PAGES.get(page, [(None, ["API"])]):
        group_id = None
        if group is not None:
            group_id = component_id(page, group)
            record = _component(page, len(components), group, now, group_id=None)
            record |= {"id": group_id, "group": True, "components": []}
            components.append(record)
        for name in names:
            components.append(_component(page, len(components), name, now, group_id=group_id))
    groups = {c["id"]: c for c in components if c["group"]}
    for c in components:
        if c["group_id"] in groups:
            groups[c["group_id"]]["components"].append(c["id"])
    return components


# A group shows the worst status among its members, as Statuspage rolls it up.
_SEVERITY = (
    "operational",
    "under_maintenance",
    "degraded_performance",
    "partial_outage",
    "major_outage",
)


def _roll_up_groups(components: list[dict[str, Any]]) -> None:
    by_id = {c["id"]: c for c in components}
    for group in (c for c in components if c["group"]):
        statuses = [by_id[i]["status"] for i in group["components"]]
        group["status"] = max(statuses, key=_SEVERITY.index, default="operational")


def _component(
    page: str, position: int, name: str, now: str, *, group_id: str | None
) -> dict[str, Any]:
    return {
        "id": component_id(page, name),
        "name": name,
        "status": "operational",
        "created_at": now,
        "updated_at": now,
        "position": position + 1,
        "description": None,
        "showcase": group_id is None,
        "start_date": None,
        "group_id": group_id,
        "page_id": f"page-{page}",
        "group": False,
        "only_show_if_degraded": False,
    }

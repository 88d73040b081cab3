"""The provider's own status page, as one more finding beside a probe's checks.

Twilio and SendGrid publish Atlassian Statuspage pages (`/api/v2/summary.json`). A real page
lists far more than the products an integration depends on: Twilio's has a component per
carrier and per destination country beside SMS itself. So each integration names its *core*
components, by component id or exact name (a group's id or name stands for its members):

- a core component degraded or partially out, or an open incident on one, degrades; a core
  component in `major_outage` fails. That is the `provider`-category `platform_incident`
  that explains failures the customer cannot fix and feeds the provider_outage rule.
- any other component (a carrier, a country) or an incident on only those degrades at most
  (`platform_peripheral_incident`): some recipients may see delays, but one carrier's
  trouble must never fail every integration of the provider.
- `under_maintenance` is announced work: named in the summary, never worse than ok.

A status page that cannot be read says nothing about the provider, so that finding is
`unknown` and never changes an integration's health.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from healthd.interfaces import Probe, ProbeContext
from healthd.model import Finding, Status
from probes._http import Answer, TransportFailure, catalog_finding, request_json

# Statuspage component states. `under_maintenance` is announced work: shown, but it does
# not degrade anything by itself. A state not listed here is read as operational.
_COMPONENT_STATUS = {
    "operational": Status.OK,
    "under_maintenance": Status.OK,
    "degraded_performance": Status.DEGRADED,
    "partial_outage": Status.DEGRADED,
    "major_outage": Status.FAILING,
}
_CLOSED_INCIDENTS = frozenset({"resolved", "postmortem", "completed"})


@dataclass(frozen=True, slots=True)
class _Component:
    id: str
    name: str
    status: str
    group: str | None  # the group's name, for the summary ("AT&T - SMS (US Carriers)")

    @property
    def health(self) -> Status:
        return _COMPONENT_STATUS.get(self.status, Status.OK)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.group})" if self.group else self.name


@dataclass(frozen=True, slots=True)
class _Page:
    """The page split into the integration's core components and every other one."""

    core: list[_Component]
    others: list[_Component]
    core_incidents: list[dict[str, Any]]
    other_incidents: list[dict[str, Any]]
    missing: list[str]  # configured ids or names the page does not have


async def statuspage_finding(
    ctx: ProbeContext, probe: type[Probe[Any]], url: str, core: Sequence[str]
) -> Finding:
    """One finding for the page, judged on the `core` components (ids or exact names)."""
    try:
        answer = await _fetch(ctx, url)
    except TransportFailure as failure:
        return _unavailable(ctx, probe, failure.detail)
    if not answer.ok or not isinstance(answer.data, dict):
        return _unavailable(ctx, probe, f"HTTP {answer.status}")
    page = _read(answer.data, core)
    name, prefix = probe.traits.display_name, probe.traits.code_prefix

    def finding(
        code: str, status: Status, summary: str, incidents: list[dict[str, Any]]
    ) -> Finding:
        return catalog_finding(
            ctx.catalog,
            probe.provider,
            f"{prefix}.{code}",
            check="platform",
            status=status,
            summary=summary[:300],
            count=len(incidents) or None,
            examples=tuple(str(i.get("shortlink") or i.get("id", "")) for i in incidents[:3]),
        )

    status = Status.worst([c.health for c in page.core])
    if page.core_incidents and status is Status.OK:
        status = Status.DEGRADED
    if status is not Status.OK:
        return finding(
            "platform_incident",
            status,
            f"{name} status page: " + _describe(page.core, page.core_incidents),
            page.core_incidents,
        )
    if any(c.health is not Status.OK for c in page.others) or page.other_incidents:
        return finding(
            "platform_peripheral_incident",
            Status.DEGRADED,
            f"{name} status page: "
            + _describe(page.others, page.other_incidents)
            + "; its core components are operational",
            page.other_incidents,
        )
    summary = f"{name} reports its core components operational"
    maintained = [c.label for c in page.core if c.status == "under_maintenance"]
    if maintained:
        summary += f" (maintenance in progress: {', '.join(maintained)})"
    if page.missing:
        summary += f"; not on the page: {', '.join(page.missing)}"
    return finding("platform_operational", Status.OK, summary, [])


# A status page changes on the scale of minutes; every integration of the provider reads
# the same one, so one fetch serves all of them for this long.
STATUS_PAGE_TTL = timedelta(seconds=30)


async def _fetch(ctx: ProbeContext, url: str) -> Answer:
    if ctx.shared is None:
        return await request_json(ctx, "GET", url)
    return await ctx.shared.get(url, STATUS_PAGE_TTL, lambda: request_json(ctx, "GET", url))


def _read(summary: dict[str, Any], wanted: Sequence[str]) -> _Page:
    """Split the page's member components (groups only name them) into core and others."""
    raw = [c for c in summary.get("components", []) if isinstance(c, dict)]
    groups = {str(c.get("id")): str(c.get("name", "")) for c in raw if c.get("group") is True}
    names = set(wanted)
    core_groups = {gid for gid, gname in groups.items() if gid in names or gname in names}
    core: list[_Component] = []
    others: list[_Component] = []
    seen: set[str] = set()
    for c in raw:
        if c.get("group") is True or not isinstance(c.get("name"), str):
            continue
        group_id = c.get("group_id")
        component = _Component(
            id=str(c.get("id", "")),
            name=c["name"],
            status=str(c.get("status", "")),
            group=groups.get(str(group_id)) if group_id else None,
        )
        if component.id in names or component.name in names or group_id in core_groups:
            core.append(component)
        else:
            others.append(component)
        seen |= {component.id, component.name}
    seen |= set(groups) | set(groups.values())
    core_ids = {c.id for c in core} | core_groups  # an incident may name the group
    core_incidents: list[dict[str, Any]] = []
    other_incidents: list[dict[str, Any]] = []
    for incident in summary.get("incidents", []):
        if not isinstance(incident, dict) or incident.get("status") in _CLOSED_INCIDENTS:
            continue
        touched = {c.get("id") for c in incident.get("components", []) if isinstance(c, dict)}
        (core_incidents if touched & core_ids else other_incidents).append(incident)
    missing = [w for w in wanted if w not in seen]
    return _Page(core, others, core_incidents, other_incidents, missing)


def _describe(components: list[_Component], incidents: list[dict[str, Any]]) -> str:
    """Incident titles, then the components that are not operational, with their groups."""
    parts = [str(i.get("name", "incident")) for i in incidents[:3]]
    bad = [c.label for c in components if c.health is not Status.OK]
    if bad:
        parts.append(f"{', '.join(bad[:5])} not operational")
    return "; ".join(parts)


def _unavailable(ctx: ProbeContext, probe: type[Probe[Any]], detail: str) -> Finding:
    return catalog_finding(
        ctx.catalog,
        probe.provider,
        f"{probe.traits.code_prefix}.statuspage_unavailable",
        check="platform",
        status=Status.UNKNOWN,
        summary=f"{probe.traits.display_name} status page could not be read ({detail})",
    )

"""The provider's own status page, as one more finding beside a probe's checks.

Twilio and SendGrid publish Atlassian Statuspage pages (`/api/v2/summary.json`). An open
incident or a degraded component that the integration depends on is a `provider`-category
finding: it explains a failure the customer cannot fix, and it feeds the provider_outage
rule. A status page that cannot be read says nothing about the provider, so that finding
is `unknown` and never changes an integration's health.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from healthd.interfaces import Probe, ProbeContext
from healthd.model import Finding, Status
from probes._http import Answer, TransportFailure, catalog_finding, request_json

# Statuspage component states, worst last. `under_maintenance` is announced work: shown,
# but it does not degrade anything by itself.
_COMPONENT_STATUS = {
    "operational": Status.OK,
    "under_maintenance": Status.OK,
    "degraded_performance": Status.DEGRADED,
    "partial_outage": Status.DEGRADED,
    "major_outage": Status.FAILING,
}


async def statuspage_finding(
    ctx: ProbeContext, probe: type[Probe[Any]], url: str, components: Sequence[str]
) -> Finding:
    """One finding for the components whose names contain any of `components` (case-blind)."""
    try:
        answer = await _fetch(ctx, url)
    except TransportFailure as failure:
        return _unavailable(ctx, probe, failure.detail)
    if not answer.ok or not isinstance(answer.data, dict):
        return _unavailable(ctx, probe, f"HTTP {answer.status}")
    affected = _affected_components(answer.data, components)
    incidents = _open_incidents(answer.data, {c["id"] for c in affected} or None)
    status = Status.worst([_COMPONENT_STATUS.get(c.get("status", ""), Status.OK) for c in affected])
    if incidents and status is Status.OK:
        status = Status.DEGRADED
    name, prefix = probe.traits.display_name, probe.traits.code_prefix
    if status is Status.OK:
        return catalog_finding(
            ctx.catalog,
            probe.provider,
            f"{prefix}.platform_operational",
            check="platform",
            status=Status.OK,
            summary=f"{name} reports its messaging components operational",
        )
    names = ", ".join(sorted({c["name"] for c in affected if c.get("status") != "operational"}))
    titles = "; ".join(i.get("name", "incident") for i in incidents[:3])
    summary = f"{name} status page: " + (titles or f"{names} not operational")
    return catalog_finding(
        ctx.catalog,
        probe.provider,
        f"{prefix}.platform_incident",
        check="platform",
        status=status,
        summary=summary[:300],
        count=len(incidents) or None,
        examples=tuple(str(i.get("shortlink") or i.get("id", "")) for i in incidents[:3]),
    )


# A status page changes on the scale of minutes; every integration of the provider reads
# the same one, so one fetch serves all of them for this long.
STATUS_PAGE_TTL = timedelta(seconds=30)


async def _fetch(ctx: ProbeContext, url: str) -> Answer:
    if ctx.shared is None:
        return await request_json(ctx, "GET", url)
    return await ctx.shared.get(url, STATUS_PAGE_TTL, lambda: request_json(ctx, "GET", url))


def _affected_components(summary: dict[str, Any], wanted: Sequence[str]) -> list[dict[str, Any]]:
    needles = [w.lower() for w in wanted]
    return [
        c
        for c in summary.get("components", [])
        if isinstance(c, dict)
        and isinstance(c.get("name"), str)
        and any(n in c["name"].lower() for n in needles)
    ]


def _open_incidents(
    summary: dict[str, Any], component_ids: set[str] | None
) -> list[dict[str, Any]]:
    """Unresolved incidents; limited to the given components when the page names them."""
    found = []
    for incident in summary.get("incidents", []):
        if not isinstance(incident, dict) or incident.get("status") in ("resolved", "postmortem"):
            continue
        touched = {c.get("id") for c in incident.get("components", []) if isinstance(c, dict)}
        if component_ids is None or not touched or touched & component_ids:
            found.append(incident)
    return found


def _unavailable(ctx: ProbeContext, probe: type[Probe[Any]], detail: str) -> Finding:
    return catalog_finding(
        ctx.catalog,
        probe.provider,
        f"{probe.traits.code_prefix}.statuspage_unavailable",
        check="platform",
        status=Status.UNKNOWN,
        summary=f"{probe.traits.display_name} status page could not be read ({detail})",
    )

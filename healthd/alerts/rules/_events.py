"""The events an incident's trigger and resolve put in the outbox (PagerDuty-shaped).

Events carry: a one-line summary (at most 1024 characters), source, component (provider),
group (tenant), class (rule), custom_details with the findings and their fixes, and a link
to the integration in the status API when `status_url` is set.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from healthd.alerts.rules._base import Condition
from healthd.model import AlertEvent, EventAction, Incident, Severity

if TYPE_CHECKING:
    # For types only: settings.py builds its `rules:` block from this package's table.
    from healthd.alerts.settings import AlertingSettings

SUMMARY_LIMIT = 1024  # PagerDuty payload.summary maximum (PROVIDERS.md D1)


def trigger_event(cond: Condition, settings: AlertingSettings, now: datetime) -> AlertEvent:
    return AlertEvent(
        rule=cond.rule,
        action=EventAction.TRIGGER,
        dedup_key=cond.dedup_key,
        summary=one_line(cond.summary),
        source=settings.source,
        severity=cond.severity,
        component=cond.provider,
        group=cond.tenant,
        class_=cond.rule,
        custom_details=dict(cond.details),
        links=_links(cond.integration, settings),
        timestamp=now,
    )


def resolve_event(incident: Incident, settings: AlertingSettings, now: datetime) -> AlertEvent:
    integration = incident.details.get("integration")
    provider = incident.details.get("provider")
    tenant = incident.details.get("tenant")
    return AlertEvent(
        rule=incident.rule,
        action=EventAction.RESOLVE,
        dedup_key=incident.dedup_key,
        summary=one_line(f"Resolved: {incident.summary}"),
        source=settings.source,
        severity=Severity.INFO,
        component=str(provider) if provider else None,
        group=str(tenant) if tenant else None,
        class_=incident.rule,
        custom_details={"opened_at": incident.opened_at.isoformat()},
        links=_links(str(integration) if integration else None, settings),
        timestamp=now,
    )


def _links(integration: str | None, settings: AlertingSettings) -> tuple[tuple[str, str], ...]:
    if integration is None or settings.status_url is None:
        return ()
    href = f"{settings.status_url}/api/v1/integrations/{integration}"
    return ((href, f"{integration} in healthd's status API"),)


def one_line(text: str, limit: int = SUMMARY_LIMIT) -> str:
    """Collapse whitespace to one line and cut to `limit` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"

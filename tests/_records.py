"""The alert events and incidents the store tests write, one builder each, so that the
contract suite and each backend's own tests write the same records."""

from __future__ import annotations

from datetime import UTC, datetime

from healthd.model import AlertEvent, EventAction, Incident

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def alert_event(dedup_key: str = "bridge", action: EventAction = EventAction.TRIGGER) -> AlertEvent:
    """A bridge page's event, every field the outbox keeps set."""
    return AlertEvent(
        rule="bridge_unreachable",
        action=action,
        dedup_key=dedup_key,
        summary=f"{dedup_key} {action.value}",
        source="healthd",
        custom_details={"integration": "bridge-dc1"},
        links=(("https://status.example/bridge", "status"),),
        timestamp=T0,
    )


def open_incident(dedup_key: str, opened_at: datetime = T0) -> Incident:
    """A bridge page's incident, opened at `opened_at` and not resolved."""
    return Incident(
        dedup_key=dedup_key,
        rule="bridge_unreachable",
        summary=f"{dedup_key} is down",
        opened_at=opened_at,
        details={"integration": "bridge-dc1"},
    )

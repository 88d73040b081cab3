"""Reconciliation: the conditions true now against the incidents the store holds open.

- a condition true now with no open incident is triggered (unless held back: recovering,
  suppressed by an earlier rule, or silenced);
- an open incident whose condition no longer holds is resolved (never blocked);
- a condition that holds and is already open produces nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from healthd.alerts import routing
from healthd.alerts.rules._base import Condition
from healthd.alerts.rules._events import resolve_event, trigger_event
from healthd.model import AlertEvent, Incident

if TYPE_CHECKING:
    # For types only: settings.py builds its `rules:` block from this package's table.
    from healthd.alerts.settings import AlertingSettings, MaintenanceWindow

# What an open incident remembers beyond its labels: the integrations it covers (probed
# first after a restart) and, for the bridge, the tenants without an SMS fallback (the
# status API lists them while the page is open).
_KEPT_DETAILS = ("integrations", "tenants_without_sms_fallback")


@dataclass(frozen=True, kw_only=True, slots=True)
class AlertPlan:
    """What the store applies in one transaction (`Store.apply_alerts`)."""

    opened: tuple[Incident, ...] = ()
    resolved: tuple[tuple[str, datetime], ...] = ()
    events: tuple[tuple[str, AlertEvent], ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.opened or self.resolved or self.events)


def reconcile(
    conditions: Sequence[tuple[Condition, bool]],
    open_incidents: Sequence[Incident],
    open_keys: AbstractSet[str],
    windows: Sequence[MaintenanceWindow],
    settings: AlertingSettings,
    now: datetime,
) -> AlertPlan:
    """`conditions` are (condition, held back) in the order their events go out."""
    wanted = {c.dedup_key for c, _ in conditions}
    opened, events = triggered(conditions, open_keys, windows, settings, now)
    gone = [i for i in open_incidents if i.is_open and i.dedup_key not in wanted]
    resolved, resolve_events = resolves(gone, settings, now)
    return AlertPlan(opened=opened, resolved=resolved, events=(*events, *resolve_events))


def triggered(
    conditions: Iterable[tuple[Condition, bool]],
    open_keys: AbstractSet[str],
    windows: Sequence[MaintenanceWindow],
    settings: AlertingSettings,
    now: datetime,
) -> tuple[tuple[Incident, ...], tuple[tuple[str, AlertEvent], ...]]:
    """The incidents `conditions` open now and their trigger events, in their order."""
    opened: list[Incident] = []
    events: list[tuple[str, AlertEvent]] = []
    for cond, held_back in conditions:
        if cond.dedup_key in open_keys or held_back or silenced(cond, windows, now):
            continue
        channel = routing.channel_for(cond.audience, cond.tenant)
        opened.append(
            Incident(
                dedup_key=cond.dedup_key,
                rule=cond.rule,
                summary=cond.summary,
                opened_at=now,
                details={
                    "channel": channel,
                    "integration": cond.integration,
                    "provider": cond.provider,
                    "tenant": cond.tenant,
                    **{k: cond.details[k] for k in _KEPT_DETAILS if k in cond.details},
                },
            )
        )
        if routing.deliverable(channel, settings):
            events.append((channel, trigger_event(cond, settings, now)))
    return tuple(opened), tuple(events)


def resolves(
    gone: Iterable[Incident], settings: AlertingSettings, now: datetime
) -> tuple[tuple[tuple[str, datetime], ...], tuple[tuple[str, AlertEvent], ...]]:
    """`gone` (open incidents whose condition no longer holds) resolved, by dedup key."""
    resolved: list[tuple[str, datetime]] = []
    events: list[tuple[str, AlertEvent]] = []
    for incident in sorted(gone, key=lambda i: i.dedup_key):
        resolved.append((incident.dedup_key, now))
        channel = str(incident.details.get("channel") or routing.DEFAULT_CHANNEL)
        if routing.deliverable(channel, settings):
            events.append((channel, resolve_event(incident, settings, now)))
    return tuple(resolved), tuple(events)


def silenced(cond: Condition, windows: Sequence[MaintenanceWindow], now: datetime) -> bool:
    return any(
        w.silences(
            cond.rule, now, integration=cond.integration, tenant=cond.tenant, provider=cond.provider
        )
        for w in windows
    )

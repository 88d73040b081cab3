"""Shared dependencies on a workspace's page: the platform's integrations its messages use.

A workspace token cannot see the platform's integrations (another tenant's), yet during an
iMessage outage its Health check page must not show everything green. So each platform
integration whose provider declares what it means for a workspace (`ProviderTraits.
shared_impact`: the bridge) is shown to every workspace in a reduced, read-only form:
its provider's name, status, since when, and the impact on this workspace, which depends
on whether it has an SMS fallback of its own (a connected Twilio that is not failing).
Nothing else: no id, host, base URL, findings (a summary may name a host) or tenants.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from healthd.api import schemas
from healthd.api.views import status_of
from healthd.model import Integration, IntegrationState, Status


def shared_dependencies(
    platform: Iterable[Integration],
    own: Iterable[Integration],
    states: Mapping[str, IntegrationState],
) -> list[schemas.SharedDependency]:
    """What `own`'s workspace sees of the `platform` integrations."""
    fallback = any(i.sms_fallback and not status_of(states.get(i.id)).is_bad for i in own)
    out = []
    for integration in platform:
        traits = integration.traits
        if traits is None or not traits.shared_impact:
            continue
        state = states.get(integration.id)
        status = status_of(state)
        impact = ""
        if status not in (Status.OK, Status.UNKNOWN):
            impact = traits.shared_impact
            if not fallback:
                impact = traits.shared_impact_without_fallback or impact
        out.append(
            schemas.SharedDependency(
                name=traits.display_name,
                provider=integration.provider,
                status=status,
                since=state.since if state else None,
                unreachable_since=state.unreachable_since if state else None,
                impact=impact,
            )
        )
    return out

"""Channel routing: which channel a condition goes to, and whether it can be delivered.

One row per audience (`healthd.alerts.channels.Audience`): the rules say who a condition
is for, this table says where that is. A channel that is not deliverable (PagerDuty not
configured, a tenant without a webhook) still gets its incidents recorded, but no outbox
row is queued for it. A new notifier for a new audience is one row here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from healthd.alerts import channels
from healthd.alerts.channels import Audience

if TYPE_CHECKING:
    # For types only: settings.py builds its `rules:` block from the rule table, whose
    # package evaluates through this module.
    from healthd.alerts.settings import AlertingSettings


@dataclass(frozen=True, kw_only=True, slots=True)
class Route:
    audience: Audience
    # The channel of a condition for `audience`, given the tenant it concerns.
    channel: Callable[[str | None], str]
    # Whether `channel` is one of this route's, and whether it has a notifier configured.
    owns: Callable[[str], bool]
    deliverable: Callable[[str, AlertingSettings], bool]


def _tenant_webhook(tenant: str | None) -> str:
    if tenant is None:
        raise ValueError("a condition for its tenant must name the tenant")
    return channels.webhook(tenant)


ROUTES: tuple[Route, ...] = (
    Route(
        audience=Audience.ON_CALL,
        channel=lambda _tenant: channels.PAGERDUTY,
        owns=lambda channel: channel == channels.PAGERDUTY,
        deliverable=lambda _channel, settings: settings.pagerduty is not None,
    ),
    Route(
        audience=Audience.TENANT,
        channel=_tenant_webhook,
        owns=lambda channel: channels.webhook_tenant(channel) is not None,
        deliverable=lambda channel, settings: channels.webhook_tenant(channel) in settings.webhooks,
    ),
)

# Incidents recorded before the channel was kept in their details were all pages.
DEFAULT_CHANNEL = channels.PAGERDUTY


def channel_for(audience: Audience, tenant: str | None) -> str:
    """The channel a condition for `audience` (about `tenant`) goes to."""
    [route] = [r for r in ROUTES if r.audience is audience]
    return route.channel(tenant)


def deliverable(channel: str, settings: AlertingSettings) -> bool:
    """Without a notifier configured for it, a channel's incidents are recorded but no
    event is queued."""
    return any(r.owns(channel) and r.deliverable(channel, settings) for r in ROUTES)

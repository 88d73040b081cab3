"""Channel names and audiences: the one place the strings `pagerduty` and `webhook:<tenant>`
are spelled.

A channel names one notifier and one outbox queue (`OutboxItem.channel`). A rule never
names a channel: it says who a condition is for (its `Audience`), and `healthd.alerts.routing`
picks the channel. A leaf module, so that the rules, the routing and the notifiers can all
import it.
"""

from __future__ import annotations

from enum import StrEnum

PAGERDUTY = "pagerduty"
_WEBHOOK_PREFIX = "webhook:"


class Audience(StrEnum):
    """Who a condition is for."""

    ON_CALL = "on_call"  # the platform's on-call: paged
    TENANT = "tenant"  # the tenant that owns the integration: its own webhook


def webhook(tenant: str) -> str:
    """The channel of `tenant`'s webhook."""
    return f"{_WEBHOOK_PREFIX}{tenant}"


def webhook_tenant(channel: str) -> str | None:
    """The tenant whose webhook `channel` is, or None for any other channel."""
    tenant = channel.removeprefix(_WEBHOOK_PREFIX)
    return tenant if tenant != channel else None

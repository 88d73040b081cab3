"""Alerting: rules decide which incidents are open, the outbox delivers their events.

runner ──> rules.evaluate(...) -> AlertPlan ──> Store.apply_alerts (incidents + outbox rows)
                                                      │
        PagerDuty / tenant webhooks <── Notifier <── Outbox (claim, send, retry, reject)
"""

from __future__ import annotations

import aiohttp
import structlog

from healthd.alerts.outbox import Outbox
from healthd.alerts.pagerduty import PagerDutyNotifier
from healthd.alerts.rules import AlertPlan, evaluate
from healthd.alerts.settings import AlertingSettings
from healthd.alerts.webhook import WebhookNotifier
from healthd.clock import Clock
from healthd.interfaces import Notifier

__all__ = [
    "AlertPlan",
    "AlertingSettings",
    "Outbox",
    "PagerDutyNotifier",
    "WebhookNotifier",
    "build_notifiers",
    "evaluate",
]

log = structlog.get_logger(__name__)


def build_notifiers(
    settings: AlertingSettings, session: aiohttp.ClientSession, clock: Clock
) -> dict[str, Notifier]:
    """One notifier per channel the config names. Warns loudly when PagerDuty is not set up:
    a pager that silently will not page is the worst failure."""
    notifiers: dict[str, Notifier] = {}
    if settings.pagerduty is None:
        log.warning(
            "pagerduty_not_configured",
            message="alerting.pagerduty is not set: rules are evaluated and incidents are "
            "recorded, but NO PAGE WILL BE SENT to on-call",
        )
    else:
        notifiers["pagerduty"] = PagerDutyNotifier(settings.pagerduty)
    for tenant, hook in sorted(settings.webhooks.items()):
        notifier = WebhookNotifier(tenant, hook.url, hook.secret, session, clock=clock)
        notifiers[notifier.channel] = notifier
    return notifiers

"""The notifier table: one row per kind of notifier, each building its notifiers from the
`alerting:` settings.

A new notifier is its module (the notifier and a `from_settings` function) and one row in
`NOTIFIERS`. Every notifier built here is closed by the daemon at shutdown.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import aiohttp

from healthd.alerts import pagerduty, webhook
from healthd.alerts.settings import AlertingSettings
from healthd.clock import Clock
from healthd.interfaces import Notifier

# (settings, the shared HTTP session, the clock) -> the notifiers the settings configure.
NotifierRow = Callable[[AlertingSettings, aiohttp.ClientSession, Clock], Sequence[Notifier]]

NOTIFIERS: tuple[NotifierRow, ...] = (
    pagerduty.from_settings,
    webhook.from_settings,
)


def build_notifiers(
    settings: AlertingSettings, session: aiohttp.ClientSession, clock: Clock
) -> dict[str, Notifier]:
    """One notifier per channel the config names, by channel."""
    return {
        notifier.channel: notifier
        for row in NOTIFIERS
        for notifier in row(settings, session, clock)
    }

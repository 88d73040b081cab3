from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import structlog

from healthd.alerts.notifiers import build_notifiers
from healthd.alerts.pagerduty import PagerDutyNotifier
from healthd.alerts.settings import AlertingSettings
from healthd.clock import FakeClock
from healthd.secrets import Secret

HOOK = {"url": "https://hooks.acme.test/healthd", "secret": Secret("w")}


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def test_without_pagerduty_a_warning_says_no_page_will_be_sent(session):
    settings = AlertingSettings.model_validate({"webhooks": {"acme": HOOK}})
    with structlog.testing.capture_logs() as logs:
        notifiers = build_notifiers(settings, session, FakeClock())
    assert set(notifiers) == {"webhook:acme"}
    [warning] = [e for e in logs if e["event"] == "pagerduty_not_configured"]
    assert warning["log_level"] == "warning"
    assert "NO PAGE WILL BE SENT" in warning["message"]


async def test_one_notifier_per_configured_channel(session):
    settings = AlertingSettings.model_validate(
        {"pagerduty": {"routing_key": Secret("k" * 32)}, "webhooks": {"acme": HOOK}}
    )
    with structlog.testing.capture_logs() as logs:
        notifiers = build_notifiers(settings, session, FakeClock())
    pd = notifiers["pagerduty"]
    assert isinstance(pd, PagerDutyNotifier)
    await pd.close()
    assert set(notifiers) == {"pagerduty", "webhook:acme"}
    assert all(n.channel == name for name, n in notifiers.items())
    assert logs == []

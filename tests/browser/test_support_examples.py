"""The status page shows the support bundle's message ids under a delivery finding."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from healthd.sim.app import SimulatorThread
from healthd.sim.client import SimClient
from healthd.sim.fixtures import integration_entry
from healthd.sim.twilio import DEFAULT_TOKEN
from tests.browser.test_status_page import card, sign_in
from tests.conftest import TENANT_TOKENS, base_config, running_daemon

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.usefixtures("secrets_env")]

ACCOUNT_SID = "AC" + "d4" * 16


async def test_a_filtering_finding_lists_message_sids_for_support(
    sim: SimulatorThread,
    sim_client: SimClient,
    browser: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACME_TWILIO_SID", ACCOUNT_SID)
    monkeypatch.setenv("TWILIO_TEST_TOKEN", DEFAULT_TOKEN)
    sim_client.set_scenario("twilio", "filtering_spike", target=ACCOUNT_SID, count=20)
    entry = integration_entry(
        "twilio",
        sim.http_url,
        ACCOUNT_SID,
        id="acme-twilio",
        tenant="acme",
        credentials={"account_sid": "env:ACME_TWILIO_SID", "auth_token": "env:TWILIO_TEST_TOKEN"},
        failure_threshold=1,
    )
    async with asyncio.timeout(120), running_daemon(base_config(sim, [entry])) as d:
        await d.runner.run_once("acme-twilio")
        await d.ledger.drained()
        page = await sign_in(browser, d.url, TENANT_TOKENS["acme"])
        examples = card(page, "acme-twilio").locator(".example-list li")
        await examples.first.wait_for()
        texts = await examples.all_inner_texts()

    assert len(texts) >= 3
    assert all(t.startswith("SM") and "undelivered" in t for t in texts)

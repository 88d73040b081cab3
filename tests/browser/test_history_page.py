"""History on the status page, in Chromium: the 90-day bar, the shares, latency and incidents
as a person sees them in the healthy, failing and outage states (screenshots in
`artifacts/`), the bar agreeing with the API, the failing provider first, plain words."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from healthd import history
from healthd.clock import FakeClock
from healthd.daemon import Daemon
from healthd.sim.app import SimulatorThread
from healthd.sim.client import SimClient
from healthd.sim.fixtures import integration_entry
from tests.api.conftest import call, fleet_config
from tests.browser.test_status_page import card, sign_in
from tests.conftest import ADMIN_TOKEN, running_daemon

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.usefixtures("secrets_env", "sendgrid_env"),
]
SENDGRID_KEY = "SG.history-page-key"  # the simulator keys SendGrid scenarios on the key

# A week ago at midnight: the scripted days (seven at most) end before the browser's now.
START = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=7)
# An exception's class name, the way it used to reach findings (`ServerDisconnectedError`).
CLASS_NAME = re.compile(r"\b[A-Z][a-z]+(?:[A-Z][a-z]+)+(?:Error|Exception)\b")


@pytest.fixture
def sendgrid_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HISTORY_SENDGRID_KEY", SENDGRID_KEY)


def history_config(sim: SimulatorThread) -> dict[str, Any]:
    doc = fleet_config(sim, failure_threshold=1, success_threshold=1)
    doc["integrations"][0]["page"] = True  # bridge-acme1 pages when it fails
    doc["integrations"].append(
        integration_entry(
            "sendgrid",
            sim.http_url,
            SENDGRID_KEY,
            id="sendgrid-acme",
            tenant="acme",
            credentials={"api_key": "env:HISTORY_SENDGRID_KEY"},
        )
    )
    return doc


async def days_of_runs(d: Daemon, clock: FakeClock, days: int, per_day: int = 4) -> None:
    """Every integration runs `per_day` times a day for `days` days from the clock's now."""
    for _ in range(days * per_day):
        await d.runner.run_many(list(d.runner.integrations))
        await d.engine.evaluate()
        clock.advance(timedelta(days=1) / per_day)


async def screenshot(page: Any, artifacts: Path, name: str) -> None:
    await page.screenshot(path=str(artifacts / f"history-{name}.png"), full_page=True)


async def plain_words(page: Any) -> None:
    text = await page.locator("main").inner_text()
    assert CLASS_NAME.findall(text) == []


async def test_healthy_failing_and_outage_states_as_a_person_sees_them(
    sim: SimulatorThread, sim_client: SimClient, browser: Any, artifacts: Path
) -> None:
    clock = FakeClock(START)
    async with asyncio.timeout(180), running_daemon(history_config(sim), clock=clock) as d:
        await days_of_runs(d, clock, 3)
        page = await sign_in(browser, d.url, ADMIN_TOKEN)
        healthy = card(page, "bridge-dc1")
        await expect(healthy.locator(".shares")).to_contain_text("Uptime, 24 hours100%")
        bar = healthy.get_by_role("img", name=re.compile("Uptime over the last 90 days"))
        await expect(bar).to_have_attribute(
            "aria-label",
            "Uptime over the last 90 days: checks on 3 days, every check worked on 3 of them.",
        )
        await screenshot(page, artifacts, "healthy")

        sim_client.set_scenario("imessage_bridge", "signed_out", target="acme1")
        await days_of_runs(d, clock, 1, per_day=2)
        sim_client.set_scenario("imessage_bridge", "ok", target="acme1")
        await days_of_runs(d, clock, 1, per_day=1)
        sim_client.set_scenario("imessage_bridge", "signed_out", target="acme1")
        await days_of_runs(d, clock, 1, per_day=1)
        await page.reload()
        failing = card(page, "bridge-acme1")
        await expect(failing.locator(".badge")).to_contain_text("Failing")
        incidents = failing.get_by_role("list", name="Recent incidents")
        await expect(incidents.get_by_role("listitem")).to_have_count(2)
        await expect(incidents.get_by_role("listitem").nth(1)).to_contain_text("lasted 1 d")
        await expect(incidents.get_by_role("listitem").first).to_contain_text("open for")
        first = await page.locator("li.integration").first.get_attribute("data-id")
        assert first == "bridge-acme1"  # the failing one leads the page
        await plain_words(page)
        await screenshot(page, artifacts, "failing")

        sim_client.set_scenario("imessage_bridge", "offline", target="dc1")
        await days_of_runs(d, clock, 1, per_day=2)
        await page.reload()
        outage = card(page, "bridge-dc1")
        await expect(outage.locator(".badge")).to_contain_text("Unreachable")
        await expect(outage).to_contain_text("the connection was")
        outage_day = (clock.now() - timedelta(days=1)).date().isoformat()
        cell = outage.locator(f'.day[data-day="{outage_day}"]')
        await expect(cell).to_have_class(re.compile("day-down"))
        await expect(cell).to_have_attribute("title", f"{outage_day}: 0.00% of checks worked")
        await plain_words(page)
        await screenshot(page, artifacts, "outage")
        await page.context.close()


async def test_the_pages_bar_and_shares_match_the_api(
    sim: SimulatorThread, sim_client: SimClient, browser: Any
) -> None:
    clock = FakeClock(START)
    async with asyncio.timeout(180), running_daemon(history_config(sim), clock=clock) as d:
        await days_of_runs(d, clock, 1)
        sim_client.set_scenario("imessage_bridge", "offline", target="globex1")
        await days_of_runs(d, clock, 1, per_day=3)
        sim_client.set_scenario("imessage_bridge", "ok", target="globex1")
        await days_of_runs(d, clock, 1, per_day=4)
        page = await sign_in(browser, d.url, ADMIN_TOKEN)
        for iid in d.runner.integrations:
            shown = card(page, iid)
            cells = await shown.locator(".day").evaluate_all(
                "cells => cells.map(c => [c.dataset.day,"
                " c.dataset.uptime === '' ? null : Number(c.dataset.uptime)])"
            )
            bar = (await call(d.url, "GET", f"/api/v1/integrations/{iid}/history?window=90d")).json
            assert cells == [[b["start"][:10], b["uptime"]] for b in bar["buckets"]], iid
            if iid == "bridge-globex1":  # its day offline is on the bar as a day down
                assert [u for _, u in cells][-3:] == [0.0, 1.0, None]
            for window, label in (("24h", "24 hours"), ("7d", "7 days"), ("30d", "30 days")):
                api = await call(
                    d.url, "GET", f"/api/v1/integrations/{iid}/history?window={window}"
                )
                said = history.percent(api.json["uptime"]).replace("no data", "no checks")
                await expect(shown.locator(".shares")).to_contain_text(f"Uptime, {label}{said}")
        await page.context.close()


async def test_the_failing_provider_comes_before_a_healthy_one_and_keys_reach_everything(
    sim: SimulatorThread, sim_client: SimClient, browser: Any
) -> None:
    sim_client.set_scenario("sendgrid", "revoked_key", target=SENDGRID_KEY)
    async with asyncio.timeout(120), running_daemon(history_config(sim)) as d:
        await d.runner.run_many(list(d.runner.integrations))
        page = await sign_in(browser, d.url, ADMIN_TOKEN)
        titles = await page.locator(".provider-title").all_inner_texts()
        assert [t.split(" ·")[0] for t in titles] == ["SendGrid", "iMessage bridge"]

        # Keyboard only: from the top, Tab reaches the skip link, then the page's controls.
        await page.reload()
        await page.get_by_role("button", name="Run health check").wait_for()
        await page.keyboard.press("Tab")
        await expect(page.get_by_role("link", name="Skip to the status")).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(page.locator("main")).to_be_focused()
        await page.keyboard.press("Tab")
        await expect(page.get_by_role("button", name="Run health check")).to_be_focused()
        # The list's filters (issue 11): status, provider, then the workspace.
        for control in ("#status-filter", "#provider-filter", "#tenant-filter"):
            await page.keyboard.press("Tab")
            await expect(page.locator(control)).to_be_focused()
        await page.context.close()

"""The status page in a real browser: token once, a failing integration with its fix, a live
check that turns it green after the simulator heals. Screenshots go to `artifacts/`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from healthd.catalog import load
from healthd.sim.app import SimulatorThread
from healthd.sim.client import SimClient
from tests.api.conftest import ACME_TOKEN, fleet_config
from tests.conftest import ADMIN_TOKEN, base_config, bridge, running_daemon

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.usefixtures("secrets_env")]

FIX = load().lookup("imessage_bridge", "bridge.imessage_signed_out").fix.split(".")[0]
WAIT_MS = 15_000
# At 10,000 the page's history summary holds the loop for seconds on a loaded host, and a
# filtered list asked meanwhile waits behind it: bounded, but longer.
FLEET_WAIT_MS = 60_000


def page_config(sim: SimulatorThread) -> dict[str, Any]:
    """One bad answer fails, one good answer recovers: each click shows the new state."""
    return fleet_config(sim, failure_threshold=1, success_threshold=1)


async def sign_in(browser: Any, url: str, token: str) -> Any:
    context = await browser.new_context(viewport={"width": 1100, "height": 1000})
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    await page.goto(url)
    await page.get_by_label("Access token", exact=True).fill(token)
    await page.get_by_role("button", name="Show status").click()
    await page.get_by_role("heading", name="Integrations", level=2).wait_for()
    return page


def card(page: Any, integration_id: str) -> Any:
    return page.locator(f'li.integration[data-id="{integration_id}"]')


async def test_failing_integration_shows_its_fix_and_turns_ok_after_a_live_check(
    sim: SimulatorThread, sim_client: SimClient, browser: Any, artifacts: Path
) -> None:
    sim_client.set_scenario("imessage_bridge", "signed_out", target="acme1")
    async with asyncio.timeout(120), running_daemon(page_config(sim)) as d:
        await d.runner.run_many(list(d.runner.integrations))
        page = await sign_in(browser, d.url, ACME_TOKEN)

        failing = card(page, "bridge-acme1")
        await expect(failing.locator(".badge")).to_have_text("✕Status: Failing")
        await failing.get_by_text(FIX).wait_for()
        await failing.get_by_text("bridge.imessage_signed_out").wait_for()
        assert await card(page, "bridge-globex1").count() == 0  # another tenant's
        await page.screenshot(path=str(artifacts / "status-page-failing.png"), full_page=True)

        sim_client.set_scenario("imessage_bridge", "ok", target="acme1")
        await page.get_by_role("button", name="Run health check").click()
        await page.get_by_role("status").get_by_text("Health check finished").wait_for()
        await expect(failing.locator(".badge")).to_have_text("✓Status: OK")
        await page.screenshot(path=str(artifacts / "status-page-healed.png"), full_page=True)

        assert await failing.get_by_text(FIX).count() == 0
        assert ACME_TOKEN not in page.url
        assert await page.evaluate("sessionStorage.getItem('healthd.token')") == ACME_TOKEN
        await page.context.close()


async def test_the_token_is_asked_once_per_tab_and_can_be_forgotten(
    sim: SimulatorThread, browser: Any
) -> None:
    async with asyncio.timeout(120), running_daemon(page_config(sim)) as d:
        page = await sign_in(browser, d.url, ACME_TOKEN)
        await expect(page.get_by_role("heading", name="Integrations", level=2)).to_be_focused()
        await page.reload()
        await page.get_by_role("button", name="Run health check").wait_for()
        assert await page.get_by_label("Access token", exact=True).is_hidden()

        await page.get_by_role("button", name="Forget token").click()
        await page.get_by_label("Access token", exact=True).wait_for()
        assert await page.evaluate("sessionStorage.getItem('healthd.token')") is None
        await page.context.close()


async def test_a_wrong_token_is_refused_with_a_message(sim: SimulatorThread, browser: Any) -> None:
    async with asyncio.timeout(120), running_daemon(page_config(sim)) as d:
        context = await browser.new_context()
        page = await context.new_page()
        page.set_default_timeout(WAIT_MS)
        await page.goto(d.url)
        await page.get_by_label("Access token", exact=True).fill("not-a-token-0123456789")
        await page.get_by_role("button", name="Show status").click()

        await page.get_by_role("alert").get_by_text("not accepted").wait_for()
        assert await page.evaluate("sessionStorage.getItem('healthd.token')") is None
        await context.close()


async def test_admin_sees_every_tenant_grouped_by_provider_in_landmarks(
    sim: SimulatorThread, sim_client: SimClient, browser: Any, artifacts: Path
) -> None:
    sim_client.set_scenario("imessage_bridge", "offline", target="dc1")
    async with asyncio.timeout(120), running_daemon(page_config(sim)) as d:
        await d.runner.run_many(list(d.runner.integrations))
        page = await sign_in(browser, d.url, ADMIN_TOKEN)
        await expect(card(page, "bridge-dc1").locator(".badge")).to_contain_text("Unreachable")
        await page.screenshot(path=str(artifacts / "status-page-admin.png"), full_page=True)

        ids = await page.locator("li.integration").evaluate_all(
            "nodes => nodes.map(n => n.dataset.id)"
        )
        assert sorted(ids) == ["bridge-acme1", "bridge-acme2", "bridge-dc1", "bridge-globex1"]
        assert await page.get_by_role("heading", name="iMessage bridge", level=3).count() == 1
        for landmark in ("banner", "main", "contentinfo"):
            assert await page.get_by_role(landmark).count() == 1
        # The failing card says so in words, not only in colour.
        badge = await card(page, "bridge-dc1").locator(".badge").text_content()
        assert badge is not None and "Status: Unreachable" in badge
        await page.context.close()


async def test_admin_narrows_to_one_workspace_and_checks_only_that_one(
    sim: SimulatorThread, sim_client: SimClient, browser: Any
) -> None:
    async with asyncio.timeout(120), running_daemon(page_config(sim)) as d:
        await d.runner.run_many(list(d.runner.integrations))
        page = await sign_in(browser, d.url, ADMIN_TOKEN)
        await page.get_by_label("Workspace").fill("globex")
        await page.get_by_role("button", name="Apply filters").click()
        await expect(page.locator("li.integration")).to_have_count(1)

        sim_client.set_scenario("imessage_bridge", "auth_fail", target="globex1")
        sim_client.set_scenario("imessage_bridge", "auth_fail", target="acme1")
        await page.get_by_role("button", name="Run health check").click()
        await page.get_by_role("status").get_by_text("Health check finished").wait_for()

        await expect(card(page, "bridge-globex1").locator(".badge")).to_contain_text("Failing")
        assert d.runner.states["bridge-acme1"].status.value == "ok"  # not checked
        await page.context.close()


async def test_a_workspace_sees_the_down_bridge_as_a_shared_service_with_its_meaning(
    sim: SimulatorThread, sim_client: SimClient, browser: Any, artifacts: Path
) -> None:
    sim_client.set_scenario("imessage_bridge", "offline", target="dc1")
    async with asyncio.timeout(120), running_daemon(page_config(sim)) as d:
        await d.runner.run_many(list(d.runner.integrations))
        page = await sign_in(browser, d.url, ACME_TOKEN)

        shared = page.get_by_role("region", name="Shared services your messages use")
        bridge = shared.locator('li.shared[data-shared="imessage_bridge"]')
        await expect(bridge.locator(".badge")).to_have_text("⚠Status: Unreachable")
        await bridge.get_by_text("re-pushed every two minutes").wait_for()
        await page.screenshot(path=str(artifacts / "status-page-shared.png"), full_page=True)
        assert await card(page, "bridge-dc1").count() == 0  # the platform's own card is not shown
        await page.context.close()


async def test_at_ten_thousand_integrations_the_page_shows_a_page_and_filters_on_the_server(
    sim: SimulatorThread, browser: Any, artifacts: Path
) -> None:
    fleet = [
        bridge(sim, f"w{n // 100:03d}-{n:05d}", tenant=f"w{n // 100:03d}") for n in range(10_000)
    ]
    # Each page load also reads its cards' history (GET /api/v1/history?ids=); the waits
    # are long because CI's two cores are busy with the rest of the suite.
    async with asyncio.timeout(180), running_daemon(base_config(sim, fleet)) as d:
        await d.runner.run_many([i for i in d.runner.integrations if i.startswith("bridge-w042")])
        page = await sign_in(browser, d.url, ADMIN_TOKEN)

        cards = page.locator("li.integration")
        await expect(cards).to_have_count(100, timeout=FLEET_WAIT_MS)
        first = await cards.first.get_attribute("data-id")
        await page.get_by_role("button", name="Next page").click()
        await expect(page.get_by_text("Page 2", exact=True)).to_be_visible(timeout=FLEET_WAIT_MS)
        await expect(cards).to_have_count(100, timeout=FLEET_WAIT_MS)
        assert await cards.first.get_attribute("data-id") != first

        await page.get_by_label("Workspace").fill("w042")
        await page.get_by_label("Status").select_option("ok")
        await page.get_by_role("button", name="Apply filters").click()
        await expect(page.get_by_text("Page 1", exact=True)).to_be_hidden(timeout=FLEET_WAIT_MS)
        await expect(cards).to_have_count(100, timeout=FLEET_WAIT_MS)
        tenants = await cards.evaluate_all("nodes => nodes.map(n => n.dataset.id.slice(7, 11))")
        assert set(tenants) == {"w042"}
        await page.screenshot(path=str(artifacts / "status-page-10k.png"))
        await page.context.close()

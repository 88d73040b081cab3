"""Twilio through the running daemon: simulator scenario in, finding out of the status API."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from healthd.sim.app import SimulatorThread
from healthd.sim.client import SimClient
from healthd.sim.fixtures import integration_entry
from healthd.sim.twilio import DEFAULT_TOKEN as TWILIO_TOKEN
from tests.conftest import ADMIN_TOKEN, TENANT_TOKENS, base_config, running_daemon

pytestmark = pytest.mark.e2e

ACME_SID = "AC" + "a1" * 16
GLOBEX_SID = "AC" + "b2" * 16
TOKEN = TWILIO_TOKEN


@pytest.fixture
def twilio_env(monkeypatch: pytest.MonkeyPatch, secrets_env: dict[str, str]) -> None:
    monkeypatch.setenv("ACME_TWILIO_SID", ACME_SID)
    monkeypatch.setenv("GLOBEX_TWILIO_SID", GLOBEX_SID)
    monkeypatch.setenv("TWILIO_TEST_TOKEN", TOKEN)


def twilio(sim: SimulatorThread, tenant: str, account_sid: str, **extra: Any) -> dict[str, Any]:
    credentials = {
        "account_sid": f"env:{tenant.upper()}_TWILIO_SID",
        "auth_token": "env:TWILIO_TEST_TOKEN",
    }
    return integration_entry(
        "twilio",
        sim.http_url,
        account_sid,
        id=f"{tenant}-twilio",
        tenant=tenant,
        credentials=credentials,
        **extra,
    )


async def status_of(url: str, integration: str, token: str = ADMIN_TOKEN) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as s,
        s.get(
            f"{url}/api/v1/integrations/{integration}", headers={"Authorization": f"Bearer {token}"}
        ) as r,
    ):
        assert r.status == 200
        data: dict[str, Any] = await r.json()
        return data


@pytest.mark.usefixtures("twilio_env")
@pytest.mark.parametrize(
    ("scenario", "code", "provider_code", "category", "status"),
    [
        ("revoked_token", "twilio.auth_invalid", "20003", "account", "failing"),
        ("suspended", "twilio.account_suspended", "30002", "account", "failing"),
        ("closed", "twilio.account_closed", None, "account", "failing"),
        (
            "number_without_sms",
            "twilio.sender_not_sms_capable",
            "21661",
            "sender_config",
            "failing",
        ),
        ("number_not_owned", "twilio.sender_not_owned", "21606", "sender_config", "failing"),
        ("empty_pool", "twilio.service_no_senders", "21704", "sender_config", "failing"),
        ("campaign_suspended", "twilio.campaign_suspended", "30033", "sender_config", "failing"),
        ("campaign_pending", "twilio.campaign_pending", "30034", "sender_config", "degraded"),
        ("brand_failed", "twilio.brand_failed", None, "sender_config", "failing"),
        ("tollfree_unverified", "twilio.tollfree_rejected", "30032", "sender_config", "failing"),
        ("filtering_spike", "twilio.delivery_errors", "30007", "content", "degraded"),
        ("server_error", "twilio.server_error", "20500", "provider", "failing"),
        ("rate_limited", "twilio.rate_limited", "20429", "provider", "degraded"),
    ],
)
async def test_scenario_shows_its_finding_and_fix_in_the_status_api(
    sim: SimulatorThread,
    sim_client: SimClient,
    scenario: str,
    code: str,
    provider_code: str | None,
    category: str,
    status: str,
) -> None:
    sim_client.set_scenario("twilio", scenario, target=GLOBEX_SID)
    doc = base_config(sim, [twilio(sim, "acme", ACME_SID), twilio(sim, "globex", GLOBEX_SID)])
    async with running_daemon(doc) as d:
        await d.runner.run_many(["acme-twilio", "globex-twilio"])
        broken = await status_of(d.url, "globex-twilio", TENANT_TOKENS["globex"])
        healthy = await status_of(d.url, "acme-twilio", TENANT_TOKENS["acme"])

    assert [
        (p["code"], p["provider_code"], p["category"], p["status"]) for p in broken["problems"]
    ] == [(code, provider_code, category, status)]
    assert broken["problems"][0]["remediation"]
    assert healthy["last_result_status"] == "ok" and healthy["problems"] == []


@pytest.mark.usefixtures("twilio_env")
async def test_a_hanging_api_is_a_provider_timeout_never_auth_invalid(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    sim_client.set_scenario("twilio", "hanging", target=ACME_SID)
    doc = base_config(sim, [twilio(sim, "acme", ACME_SID, timeout="1s")])
    async with running_daemon(doc) as d:
        await d.runner.run_once("acme-twilio")
        view = await status_of(d.url, "acme-twilio")

    codes = {p["code"] for p in view["problems"]}
    assert view["last_result_status"] == "unreachable"
    assert {p["category"] for p in view["problems"]} == {"provider"}
    assert "twilio.auth_invalid" not in codes


@pytest.mark.usefixtures("twilio_env")
async def test_recipient_errors_alone_however_many_never_make_it_unhealthy(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    sim_client.set_scenario("twilio", "optout_trickle", target=ACME_SID, count=200, rate=0.9)
    doc = base_config(sim, [twilio(sim, "acme", ACME_SID)])
    async with running_daemon(doc) as d:
        await d.runner.run_once("acme-twilio")
        view = await status_of(d.url, "acme-twilio")
        counted = d.registry.get_sample_value(
            "healthd_findings_total",
            {
                "provider": "twilio",
                "code": "twilio.delivery_errors",
                "provider_code": "21610",
                "category": "recipient",
            },
        )

    optouts = [f for f in view["findings"] if f["provider_code"] == "21610"]
    assert view["status"] == "ok" and view["problems"] == []
    assert optouts and optouts[0]["category"] == "recipient" and optouts[0]["count"] > 50
    assert counted == 1  # one finding in one run; its messages are counted by the ledger
    assert 1 <= len(optouts[0]["examples"]) <= 3


@pytest.mark.usefixtures("twilio_env")
async def test_a_status_page_incident_is_a_provider_finding_beside_the_others(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    sim_client.set_scenario("statuspage", "incident", target="twilio")
    doc = base_config(sim, [twilio(sim, "acme", ACME_SID)])
    async with running_daemon(doc) as d:
        await d.runner.run_once("acme-twilio")
        view = await status_of(d.url, "acme-twilio")

    assert [(p["code"], p["category"]) for p in view["problems"]] == [
        ("twilio.platform_incident", "provider")
    ]
    assert len(view["findings"]) > 1


@pytest.mark.usefixtures("twilio_env")
async def test_the_status_page_is_fetched_once_for_every_account_of_a_sweep(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    doc = base_config(sim, [twilio(sim, "acme", ACME_SID), twilio(sim, "globex", GLOBEX_SID)])
    async with running_daemon(doc) as d:
        await d.runner.run_many(["acme-twilio", "globex-twilio"])
        await d.runner.run_many(["acme-twilio", "globex-twilio"])

    assert sim_client.describe()["providers"]["statuspage"]["requests"] == 1

"""SendGrid and Google through the running daemon: scenario in, finding out of the status API."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from healthd.sim.app import SimulatorThread
from healthd.sim.client import SimClient
from healthd.sim.fixtures import Credentials, integration_entry
from tests.conftest import TENANT_TOKENS, base_config, running_daemon

pytestmark = pytest.mark.e2e

SENDGRID_KEY = "SG.acme-e2e-test-key"
GOOGLE_CLIENT = "acme-e2e.apps.example"


@pytest.fixture(autouse=True)
def email_env(monkeypatch: pytest.MonkeyPatch, secrets_env: dict[str, str]) -> None:
    monkeypatch.setenv("ACME_SENDGRID_KEY", SENDGRID_KEY)
    monkeypatch.setenv("ACME_GOOGLE_CLIENT_ID", GOOGLE_CLIENT)
    monkeypatch.setenv("ACME_GOOGLE_CLIENT_SECRET", "acme-e2e-client-secret")
    monkeypatch.setenv("ACME_GOOGLE_REFRESH_TOKEN", "1//acme-e2e-refresh-token")


def sendgrid(sim: SimulatorThread, **extra: Any) -> dict[str, Any]:
    credentials = {"api_key": "env:ACME_SENDGRID_KEY"}
    return acme("sendgrid", sim, SENDGRID_KEY, credentials, **extra)


def google(sim: SimulatorThread, **extra: Any) -> dict[str, Any]:
    return acme(
        "google", sim, GOOGLE_CLIENT, lambda name: f"env:ACME_GOOGLE_{name.upper()}", **extra
    )


def acme(
    provider: str, sim: SimulatorThread, target: str, credentials: Credentials, **extra: Any
) -> dict[str, Any]:
    return integration_entry(
        provider,
        sim.http_url,
        target,
        id=f"acme-{provider}",
        tenant="acme",
        credentials=credentials,
        **extra,
    )


async def probe_and_view(sim: SimulatorThread, integration: dict[str, Any]) -> dict[str, Any]:
    async with running_daemon(base_config(sim, [integration])) as d:
        await d.runner.run_once(integration["id"])
        async with (
            aiohttp.ClientSession() as s,
            s.get(
                f"{d.url}/api/v1/integrations/{integration['id']}",
                headers={"Authorization": f"Bearer {TENANT_TOKENS['acme']}"},
            ) as r,
        ):
            assert r.status == 200
            view: dict[str, Any] = await r.json()
            return view


def problems(view: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(p["code"], p["provider_code"], p["category"], p["status"]) for p in view["problems"]]


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("revoked_key", ("sendgrid.auth_invalid", "401", "account", "failing")),
        ("missing_key", ("sendgrid.auth_missing", "401", "account", "failing")),
        ("no_mail_send_scope", ("sendgrid.scope_missing", "mail.send", "account", "failing")),
        ("sender_unverified", ("sendgrid.sender_unverified", "403", "sender_config", "failing")),
        ("domain_invalid_dns", ("sendgrid.domain_dns_invalid", None, "sender_config", "failing")),
        ("blocks_spike", ("sendgrid.block_rate_high", None, "sender_config", "degraded")),
        ("spam_reports", ("sendgrid.spam_report_rate_high", None, "sender_config", "degraded")),
        ("rate_limited", ("sendgrid.rate_limited", "429", "provider", "degraded")),
        ("server_error", ("sendgrid.server_error", "500", "provider", "failing")),
    ],
)
async def test_sendgrid_scenario_shows_its_finding_and_fix(
    sim: SimulatorThread, sim_client: SimClient, scenario: str, expected: tuple[Any, ...]
) -> None:
    sim_client.set_scenario("sendgrid", scenario, target=SENDGRID_KEY)
    view = await probe_and_view(sim, sendgrid(sim))
    assert problems(view) == [expected]
    assert view["problems"][0]["remediation"]


async def test_sendgrid_wrong_key_fix_is_the_help_pages_wording(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    sim_client.set_scenario("sendgrid", "revoked_key", target=SENDGRID_KEY)
    view = await probe_and_view(sim, sendgrid(sim))
    assert "The API key is wrong. Reconnect the integration." in view["problems"][0]["remediation"]


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("invalid_grant", ("google.auth_invalid", "invalid_grant", "account", "failing")),
        ("invalid_client", ("google.client_invalid", "invalid_client", "account", "failing")),
        (
            "insufficient_scope",
            ("google.scope_missing", "insufficientPermissions", "account", "failing"),
        ),
        ("send_as_missing", ("google.send_as_missing", "404", "sender_config", "failing")),
        ("send_as_pending", ("google.send_as_unverified", "pending", "sender_config", "failing")),
        ("rate_limited", ("google.rate_limited", "rateLimitExceeded", "provider", "degraded")),
        ("server_error", ("google.server_error", "backendError", "provider", "failing")),
    ],
)
async def test_google_scenario_shows_its_finding_and_fix(
    sim: SimulatorThread, sim_client: SimClient, scenario: str, expected: tuple[Any, ...]
) -> None:
    sim_client.set_scenario("google", scenario, target=GOOGLE_CLIENT)
    view = await probe_and_view(sim, google(sim))
    assert problems(view) == [expected]
    assert view["problems"][0]["remediation"]


async def test_bounces_alone_however_many_never_make_sendgrid_unhealthy(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    sim_client.set_scenario("sendgrid", "high_bounces", target=SENDGRID_KEY, rate=0.9)
    view = await probe_and_view(sim, sendgrid(sim))
    bounces = [f for f in view["findings"] if f["category"] == "recipient"]
    assert view["last_result_status"] == "ok" and view["problems"] == []
    assert bounces and bounces[0]["code"].startswith("sendgrid.bounce")


@pytest.mark.parametrize(
    ("provider", "make", "target"),
    [("sendgrid", sendgrid, SENDGRID_KEY), ("google", google, GOOGLE_CLIENT)],
)
@pytest.mark.parametrize("scenario", ["hanging", "server_error"])
async def test_a_hang_or_5xx_is_a_provider_finding_never_auth_invalid(
    sim: SimulatorThread,
    sim_client: SimClient,
    provider: str,
    make: Any,
    target: str,
    scenario: str,
) -> None:
    sim_client.set_scenario(provider, scenario, target=target)
    view = await probe_and_view(sim, make(sim, timeout="1s"))
    assert view["problems"]
    assert {p["category"] for p in view["problems"]} == {"provider"}
    assert not any(p["code"].endswith("auth_invalid") for p in view["problems"])

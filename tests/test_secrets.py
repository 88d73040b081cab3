"""Planted secrets must not appear anywhere a person or a scraper can read.

The bridge password, the PagerDuty routing key and the API tokens are planted with
recognisable values; the daemon runs through healthy and broken scenarios, and every log
event, the /metrics page, every API answer, every probe result and the CLI's output are
scanned for them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from structlog.testing import capture_logs

from healthd.secrets import MASK
from healthd.sim.app import SimulatorThread
from healthd.sim.client import SimClient
from healthd.sim.fixtures import integration_entry
from tests.conftest import REPO, base_config, bridge, running_daemon, write_config

pytestmark = pytest.mark.e2e

PLANTED = {
    "HEALTHD_TEST_BRIDGE_PASSWORD": "PLANTED-bridge-password-7f3a9c",
    "HEALTHD_TEST_ROUTING_KEY": "R0PLANTEDROUTINGKEY7F3A9C0000000",
    "HEALTHD_TEST_ADMIN_TOKEN": "PLANTED-admin-token-7f3a9c-000",
    "HEALTHD_TEST_TOKEN_ACME": "PLANTED-acme-token-7f3a9c-0000",
    "HEALTHD_TEST_TOKEN_GLOBEX": "PLANTED-globex-token-7f3a9c-00",
}
SCENARIOS = ["ok", "offline", "auth_fail", "html", "server_error", "hanging"]


@pytest.fixture
def planted(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in PLANTED.items():
        monkeypatch.setenv(name, value)
    return PLANTED


def assert_clean(text: str, where: str) -> None:
    for value in PLANTED.values():
        assert value not in text, f"a planted secret appears in {where}"


async def test_planted_secrets_never_leave_the_daemon(
    sim: SimulatorThread, sim_client: SimClient, planted: dict[str, str]
) -> None:
    doc = base_config(sim, [bridge(sim, "dc1", timeout="1s")])
    admin = {"Authorization": f"Bearer {planted['HEALTHD_TEST_ADMIN_TOKEN']}"}
    seen: list[str] = []
    with capture_logs() as logs:
        async with running_daemon(doc) as d, aiohttp.ClientSession(headers=admin) as http:
            for scenario in SCENARIOS:
                sim_client.set_scenario(
                    "imessage_bridge",
                    scenario,
                    target="dc1",
                    password=planted["HEALTHD_TEST_BRIDGE_PASSWORD"],
                )
                result = await d.runner.run_once("bridge-dc1")
                seen.append(repr(result))
                await d.engine.evaluate()
                for method, path in [
                    ("GET", "/api/v1/integrations"),
                    ("GET", "/api/v1/integrations/bridge-dc1"),
                    ("POST", "/api/v1/integrations/bridge-dc1/check"),
                    ("GET", "/api/v1/incidents"),
                    ("GET", "/api/v1/errors/imessage_bridge/bridge.auth_invalid"),
                    ("GET", "/openapi.json"),
                    ("GET", "/metrics"),
                ]:
                    async with http.request(method, d.url + path) as answer:
                        seen.append(await answer.text())
            seen.append(repr(d.config))

    assert_clean("\n".join(seen), "an API answer, /metrics or a result")
    assert_clean(json.dumps(logs, default=repr), "the logs")
    assert MASK in repr(d.config.integrations[0].credentials)


def test_check_command_output_has_no_secret(tmp_path: Path, sim: SimulatorThread) -> None:
    sim.client().set_scenario(
        "imessage_bridge",
        "auth_fail",
        target="dc1",
        password=PLANTED["HEALTHD_TEST_BRIDGE_PASSWORD"],
    )
    path = write_config(tmp_path / "healthd.yaml", base_config(sim, [bridge(sim)]))
    proc = subprocess.run(
        [sys.executable, "-m", "healthd", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, **PLANTED},
    )
    assert proc.returncode == 1
    assert "bridge.auth_invalid" in proc.stdout
    assert_clean(proc.stdout + proc.stderr, "`healthd check` output")


PROVIDER_SECRETS = {
    "TWILIO_PLANTED_TOKEN": "PLANTEDtwilioAuthToken7f3a9c000",
    "SENDGRID_PLANTED_KEY": "SG.PLANTED-sendgrid-key-7f3a9c",
    "GOOGLE_PLANTED_SECRET": "PLANTED-google-client-secret-7f3a9c",
    "GOOGLE_PLANTED_REFRESH": "1//PLANTED-google-refresh-7f3a9c",
}
TWILIO_SID = "AC" + "c3" * 16
GOOGLE_CLIENT = "acme-planted.apps.example"
TARGETS = {
    "twilio": TWILIO_SID,
    "sendgrid": PROVIDER_SECRETS["SENDGRID_PLANTED_KEY"],
    "google": GOOGLE_CLIENT,
}
CREDENTIALS = {
    "twilio": {"account_sid": "env:TWILIO_PLANTED_SID", "auth_token": "env:TWILIO_PLANTED_TOKEN"},
    "sendgrid": {"api_key": "env:SENDGRID_PLANTED_KEY"},
    "google": {
        "client_id": "env:GOOGLE_PLANTED_CLIENT",
        "client_secret": "env:GOOGLE_PLANTED_SECRET",
        "refresh_token": "env:GOOGLE_PLANTED_REFRESH",
    },
}


def provider_integrations(sim: SimulatorThread) -> list[dict[str, object]]:
    return [
        integration_entry(
            provider,
            sim.http_url,
            target,
            id=f"acme-{provider}",
            tenant="acme",
            timeout="1s",
            credentials=CREDENTIALS[provider],
        )
        for provider, target in TARGETS.items()
    ]


async def test_provider_credentials_never_leave_the_daemon_in_any_scenario(
    sim: SimulatorThread,
    sim_client: SimClient,
    planted: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in PROVIDER_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TWILIO_PLANTED_SID", TWILIO_SID)
    monkeypatch.setenv("GOOGLE_PLANTED_CLIENT", GOOGLE_CLIENT)
    admin = {"Authorization": f"Bearer {planted['HEALTHD_TEST_ADMIN_TOKEN']}"}
    seen: list[str] = []
    with capture_logs() as logs:
        async with (
            running_daemon(base_config(sim, provider_integrations(sim))) as d,
            aiohttp.ClientSession(headers=admin) as http,
        ):
            for provider, target in TARGETS.items():
                scenarios = [
                    s
                    for s in sim_client.describe()["providers"][provider]["scenarios"]
                    if s != "slow"
                ]
                for scenario in scenarios:
                    params = (
                        {"auth_token": PROVIDER_SECRETS["TWILIO_PLANTED_TOKEN"]}
                        if provider == "twilio"
                        else {}
                    )
                    sim_client.set_scenario(provider, scenario, target=target, **params)
                    result = await d.runner.run_once(f"acme-{provider}")
                    seen.append(repr(result))
                    async with http.get(f"{d.url}/api/v1/integrations/acme-{provider}") as answer:
                        seen.append(await answer.text())
            await d.engine.evaluate()
            async with http.get(d.url + "/metrics") as answer:
                seen.append(await answer.text())

    text = "\n".join(seen) + json.dumps(logs, default=repr)
    for value in PROVIDER_SECRETS.values():
        assert value not in text
    assert len(seen) > 20

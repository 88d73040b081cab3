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

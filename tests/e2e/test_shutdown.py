"""SIGTERM to `healthd run`: a clean exit 0, soon, and no error in the log.

Both cases are about work in flight at the signal: a PagerDuty send that does not answer
(the daemon must not wait for the SDK's thread) and a probe that does not answer (the
scheduler must not report it, cancelled, as a failed job with a traceback).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from healthd.sim.app import SimulatorThread
from healthd.sim.client import SimClient
from tests.conftest import DaemonProcess, base_config, bridge, wait_until, write_config

pytestmark = pytest.mark.e2e

# The daemon's documented worst case is about 8 s (healthd/daemon.py); the margin is load.
SHUTDOWN_BOUND = 20.0


def requests_to(sim_client: SimClient, provider: str) -> int:
    count: int = sim_client.describe()["providers"][provider]["requests"]
    return count


def start(tmp_path: Path, sim: SimulatorThread, env: dict[str, str], **doc: Any) -> DaemonProcess:
    config = base_config(sim, [bridge(sim)], store=f"sqlite:///{tmp_path / 'healthd.db'}", **doc)
    return DaemonProcess(write_config(tmp_path / "healthd.yaml", config), env).start()


def sigterm(daemon: DaemonProcess) -> int:
    assert daemon.proc is not None
    daemon.proc.terminate()
    try:
        return daemon.proc.wait(timeout=SHUTDOWN_BOUND)
    except subprocess.TimeoutExpired:
        daemon.kill()
        raise AssertionError(f"healthd took more than {SHUTDOWN_BOUND}s to stop") from None


def errors_logged(daemon: DaemonProcess) -> list[dict[str, Any]]:
    return [line for line in daemon.lines if line.get("level") in ("error", "critical")]


def test_sigterm_while_a_pagerduty_send_hangs_exits_within_the_bound(
    tmp_path: Path, sim: SimulatorThread, sim_client: SimClient, secrets_env: dict[str, str]
) -> None:
    sim_client.set_scenario("imessage_bridge", "offline", target="dc1")
    sim_client.set_scenario("pagerduty", "hanging")
    alerting = base_config(sim, [])["alerting"]
    # Ten minutes each: only the shutdown budget may cut the send short.
    alerting["pagerduty"]["timeout"] = alerting["outbox"]["send_timeout"] = "10m"
    alerting["rules"] = {"bridge_unreachable": {"page_after": "0s"}}
    daemon = start(
        tmp_path,
        sim,
        secrets_env,
        defaults={"interval": "1s", "timeout": "0.5s", "jitter": "0s", "failure_threshold": 1},
        alerting=alerting,
    )
    try:
        wait_until(lambda: requests_to(sim_client, "pagerduty") >= 1, 30, what="a send")
        assert sigterm(daemon) == 0
    finally:
        daemon.kill()


def test_sigterm_while_a_probe_is_in_flight_logs_no_error(
    tmp_path: Path, sim: SimulatorThread, sim_client: SimClient, secrets_env: dict[str, str]
) -> None:
    sim_client.set_scenario("imessage_bridge", "hanging", target="dc1")
    daemon = start(
        tmp_path,
        sim,
        secrets_env,
        defaults={"interval": "4s", "timeout": "3s", "jitter": "0s"},
    )
    try:
        wait_until(lambda: requests_to(sim_client, "imessage_bridge") >= 1, 30, what="a probe")
        assert sigterm(daemon) == 0
    finally:
        daemon.kill()
    assert errors_logged(daemon) == []
    assert not any("Traceback" in line for line in daemon.raw)

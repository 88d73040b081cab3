"""SIGHUP against `healthd run`: a good file is applied at once, a bad one changes nothing.

The gauges are Prometheus's and Alertmanager's own pair: whether the last reload
succeeded, and when the config was last loaded.
"""

from __future__ import annotations

import json
import re
import signal
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from healthd.sim.app import SimulatorThread
from tests.conftest import ADMIN_TOKEN, DaemonProcess, base_config, bridge, wait_until, write_config
from tests.registry.conftest import REGISTRY_KEY, REGISTRY_TOKEN, body, registry_config

pytestmark = pytest.mark.e2e

REGISTERED = "crm-acme-reload"


def get(daemon: DaemonProcess, path: str) -> str:
    req = urllib.request.Request(
        daemon.url + path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    with urllib.request.urlopen(req, timeout=10) as answer:
        return str(answer.read().decode())


def ids(daemon: DaemonProcess) -> set[str]:
    listed: list[dict[str, Any]] = json.loads(get(daemon, "/api/v1/integrations"))["integrations"]
    return {i["id"] for i in listed}


def gauge(daemon: DaemonProcess, name: str) -> float | None:
    match = re.search(rf"^{name} (\S+)$", get(daemon, "/metrics"), re.MULTILINE)
    return float(match.group(1)) if match else None


def settles_at(daemon: DaemonProcess, name: str, value: float) -> None:
    """Scrapes within a second share one rendering (`MetricsEndpoint.max_age`)."""
    wait_until(lambda: gauge(daemon, name) == value, 5, 0.2, f"{name} {value}")


def logged(daemon: DaemonProcess, event: str) -> list[dict[str, Any]]:
    return [line for line in daemon.lines if line.get("event") == event]


def test_sighup_applies_a_good_file_and_keeps_the_running_config_on_a_bad_one(
    tmp_path: Path, sim: SimulatorThread, secrets_env: dict[str, str]
) -> None:
    doc = base_config(sim, [bridge(sim, "dc1")])
    path = write_config(tmp_path / "healthd.yaml", doc)
    daemon = DaemonProcess(path, secrets_env).start()
    try:
        assert gauge(daemon, "healthd_config_last_reload_successful") == 1.0
        loaded_at = gauge(daemon, "healthd_config_last_reload_success_timestamp_seconds")

        path.write_text(path.read_text().replace("interval: 60s", "interval: 60 seconds"))
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: logged(daemon, "config_reload_failed"), 10, what="the failure logged")
        settles_at(daemon, "healthd_config_last_reload_successful", 0.0)
        assert "defaults.interval" in logged(daemon, "config_reload_failed")[0]["error"]
        assert ids(daemon) == {"bridge-dc1"}

        write_config(path, base_config(sim, [bridge(sim, "dc2")]))
        daemon.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: logged(daemon, "config_reloaded"), 10, what="the reload logged")
        settles_at(daemon, "healthd_config_last_reload_successful", 1.0)
        reloaded_at = gauge(daemon, "healthd_config_last_reload_success_timestamp_seconds")
        assert loaded_at is not None and reloaded_at is not None and reloaded_at > loaded_at
        assert ids(daemon) == {"bridge-dc2"}
        wait_until(
            lambda: json.loads(get(daemon, "/api/v1/integrations/bridge-dc2"))["last_checked"],
            10,
            what="the new file integration probed at once",
        )
    finally:
        assert daemon.stop() == 0


def last_checked(daemon: DaemonProcess, iid: str) -> str | None:
    found: str | None = json.loads(get(daemon, f"/api/v1/integrations/{iid}"))["last_checked"]
    return found


def test_sighup_new_defaults_reach_an_integration_registered_without_them(
    tmp_path: Path, sim: SimulatorThread, secrets_env: dict[str, str]
) -> None:
    doc = registry_config(sim, tmp_path / "healthd.db")
    doc["defaults"] = {**doc["defaults"], "interval": "1h", "timeout": "5s"}
    path = write_config(tmp_path / "healthd.yaml", doc)
    env = {
        **secrets_env,
        "HEALTHD_TEST_REGISTRY_KEY": REGISTRY_KEY,
        "HEALTHD_TEST_REGISTRY_TOKEN": REGISTRY_TOKEN,
    }
    daemon = DaemonProcess(path, env).start()
    try:
        put = urllib.request.Request(
            daemon.url + f"/api/v1/integrations/{REGISTERED}",
            data=json.dumps(body(sim, "r1")).encode(),
            method="PUT",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(put, timeout=30) as answer:
            assert answer.status == 201
        first = wait_until(lambda: last_checked(daemon, REGISTERED), 30, 0.2, "the first probe")

        # Every hour until now; every 2 s from the reload on, for what sets no interval.
        doc["defaults"] = {**doc["defaults"], "interval": "2s", "timeout": "1s"}
        write_config(path, doc)
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGHUP)
        reloaded = wait_until(lambda: logged(daemon, "config_reloaded"), 30, what="the reload")
        assert reloaded[0]["registered_changed"] == 1

        # Probed again and again at the new interval: three runs after the first, where an
        # hour's interval allows none but the one a changed registration gets at once.
        seen: set[str] = set()

        def probed_three_more() -> bool:
            now = last_checked(daemon, REGISTERED)
            if now is not None and now != first:
                seen.add(now)
            return len(seen) >= 3

        wait_until(probed_three_more, 60, 0.2, "three more probes at the new default interval")
    finally:
        assert daemon.stop() == 0

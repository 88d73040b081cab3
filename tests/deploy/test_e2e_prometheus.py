"""End to end: the deploy scrape config and rules in a real Prometheus, scraping a real
`healthd run` (a subprocess) whose bridges are the simulator's.

Probes run every second and the backup bridge rule gets test-sized thresholds (a copy of
the deploy rules with `> 600` for 5m made `> 2` for 1s); everything else is the deploy
files as shipped. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from healthd.sim.app import SimulatorThread
from healthd.sim.client import SimClient
from tests.conftest import DaemonProcess, base_config, bridge, write_config
from tests.deploy.prometheus import (
    Prometheus,
    check_metrics,
    deploy_scrape_config,
    running_prometheus,
)
from tests.deploy.promql import metric_names, without_grafana_variables
from tests.deploy.test_grafana import _expressions
from tests.deploy.test_prometheus_rules import EXPECTED_ALERTS, RULES

pytestmark = [pytest.mark.e2e, pytest.mark.prometheus]

BRIDGES = ["bridge-dc1", "bridge-dc2"]
WAIT = 60.0


def _short_bridge_rule(directory: Path) -> Path:
    document: dict[str, Any] = yaml.safe_load(RULES.read_text())
    for group in document["groups"]:
        for rule in group["rules"]:
            if rule["alert"] == "HealthdBridgeUnreachable":
                assert "> 600" in rule["expr"]
                rule["expr"] = rule["expr"].replace("> 600", "> 2")
                rule["for"] = "1s"
    path = directory / "healthd.rules.yml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture
def daemon(sim: SimulatorThread, tmp_path: Path, secrets_env: dict[str, str]) -> Iterator[str]:
    """A running `healthd run`; yields its HOST:PORT."""
    doc = base_config(
        sim,
        [bridge(sim, "dc1"), bridge(sim, "dc2")],
        defaults={"interval": "1s", "timeout": "500ms", "failure_threshold": 1},
        alerting={"rules": {"bridge_unreachable": {"page_after": "2s"}}},
    )
    process = DaemonProcess(write_config(tmp_path / "healthd.yaml", doc), secrets_env).start()
    try:
        yield process.url.removeprefix("http://")
    finally:
        process.stop()


@pytest.fixture
def prometheus(daemon: str, tmp_path: Path) -> Iterator[Prometheus]:
    rules = _short_bridge_rule(tmp_path)
    with running_prometheus(deploy_scrape_config(daemon, rule_files=[rules])) as prom:
        yield prom


def _values(prom: Prometheus, expr: str) -> dict[str, str]:
    return {s["metric"].get("integration", ""): s["value"][1] for s in prom.query(expr)}


def test_metrics_output_passes_promtool_check_metrics(daemon: str) -> None:
    with urllib.request.urlopen(f"http://{daemon}/metrics", timeout=10) as response:
        body = response.read().decode()
    run = check_metrics(body)
    assert run.returncode == 0, run.explain()


def test_prometheus_scrapes_the_fleet_counts_with_every_integration(prometheus: Prometheus) -> None:
    def counts() -> dict[str, str] | None:
        values = {
            s["metric"]["status"]: s["value"][1]
            for s in prometheus.query('healthd_integrations{provider="imessage_bridge"}')
        }
        return values if values.get("ok") == str(len(BRIDGES)) else None

    assert prometheus.wait_until(counts, timeout=WAIT) == {
        "ok": "2",
        "degraded": "0",
        "failing": "0",
        "unreachable": "0",
        "unknown": "0",
    }


def test_healthy_integrations_have_no_detail_series(prometheus: Prometheus) -> None:
    prometheus.wait_until(
        lambda: prometheus.query('healthd_integrations{status="ok"} == 2'), timeout=WAIT
    )
    assert prometheus.query("healthd_probe_success") == []


def test_deploy_rules_load_in_prometheus(prometheus: Prometheus) -> None:
    groups = prometheus.rule_groups()
    loaded = {rule["name"]: rule["health"] for group in groups for rule in group["rules"]}
    assert set(loaded) == EXPECTED_ALERTS
    prometheus.wait_until(
        lambda: all(
            rule["health"] == "ok" for group in prometheus.rule_groups() for rule in group["rules"]
        ),
        timeout=WAIT,
    )


def test_bridge_rule_fires_for_the_bridge_that_went_down(
    prometheus: Prometheus, sim_client: SimClient
) -> None:
    prometheus.wait_until(
        lambda: prometheus.query('healthd_integrations{status="ok"} == 2'), timeout=WAIT
    )
    sim_client.set_scenario("imessage_bridge", "offline", target="dc1")

    def firing() -> list[str]:
        return [
            alert["labels"]["integration"]
            for alert in prometheus.alerts()
            if alert["labels"]["alertname"] == "HealthdBridgeUnreachable"
            and alert["state"] == "firing"
        ]

    assert prometheus.wait_until(firing, timeout=WAIT) == ["bridge-dc1"]


def test_every_dashboard_query_runs_on_metrics_healthd_exported(
    prometheus: Prometheus, sim_client: SimClient
) -> None:
    """With a bridge down and paged, every metric the dashboard reads has series.

    The bridge goes down once both were seen ok, so it has a last success to show: only
    an integration that needs attention has per-integration series.
    """
    prometheus.wait_until(
        lambda: prometheus.query('healthd_integrations{status="ok"} == 2'), timeout=WAIT
    )
    sim_client.set_scenario("imessage_bridge", "offline", target="dc1")
    wanted = set().union(*(metric_names(expr) for expr in _expressions()))

    def missing() -> set[str]:
        present = prometheus.query('count by (__name__) ({__name__=~"healthd_.+"})')
        return wanted - {sample["metric"]["__name__"] for sample in present}

    with contextlib.suppress(TimeoutError):
        prometheus.wait_until(lambda: not missing(), timeout=WAIT)
    assert missing() == set()
    for expr in _expressions():
        prometheus.query(without_grafana_variables(expr))  # raises on any error

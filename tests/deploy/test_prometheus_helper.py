"""The Prometheus test helper, exercised once against a Prometheus scraping itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.deploy.prometheus import (
    PrometheusError,
    check_metrics,
    deploy_scrape_config,
    free_port,
    running_prometheus,
)

pytestmark = pytest.mark.prometheus


def test_prometheus_scrapes_itself_and_answers_queries() -> None:
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
        ],
    }
    with running_prometheus(config, port=port) as prom:
        up = prom.wait_until(lambda: prom.query('up{job="prometheus"}'), timeout=30)
        assert [sample["value"][1] for sample in up] == ["1"]
        assert up[0]["metric"]["instance"] == f"127.0.0.1:{port}"


def test_a_bad_query_raises_with_prometheus_own_message() -> None:
    config: dict[str, Any] = {"scrape_configs": []}
    with running_prometheus(config) as prom, pytest.raises(PrometheusError, match="parse"):
        prom.query("sum by (")


def test_deploy_config_loads_its_rules_when_pointed_at_a_target() -> None:
    config = deploy_scrape_config(f"127.0.0.1:{free_port()}")
    with running_prometheus(config) as prom:
        groups = prom.rule_groups()
    alerts = {rule["name"] for group in groups for rule in group["rules"]}
    assert "HealthdDown" in alerts
    assert "HealthdBridgeUnreachable" in alerts


def test_reload_refuses_to_overwrite_a_config_file_it_was_given(tmp_path: Path) -> None:
    given = tmp_path / "prometheus.yml"
    given.write_text("scrape_configs: []\n")
    with running_prometheus(given) as prom, pytest.raises(PrometheusError):
        prom.reload({"scrape_configs": []})
    assert given.read_text() == "scrape_configs: []\n"


def test_check_metrics_accepts_a_clean_exposition() -> None:
    body = "# HELP healthd_up_demo Demo.\n# TYPE healthd_up_demo gauge\nhealthd_up_demo 1\n"
    run = check_metrics(body)
    assert run.returncode == 0, run.explain()


def test_check_metrics_flags_a_metric_without_help() -> None:
    run = check_metrics("healthd_up_demo 1\n")
    assert run.returncode != 0, run.explain()
    assert "no help text" in run.stdout + run.stderr


def test_deploy_config_can_load_replacement_rule_files(tmp_path: Path) -> None:
    rules = tmp_path / "short.rules.yml"
    rules.write_text("groups: []\n")
    config = deploy_scrape_config("127.0.0.1:1", rule_files=[rules])
    assert config["rule_files"] == [str(rules)]
    assert config["scrape_configs"][0]["static_configs"] == [{"targets": ["127.0.0.1:1"]}]
    assert "alerting" not in config

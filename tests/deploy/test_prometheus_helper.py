"""The Prometheus test helper, exercised once against a Prometheus scraping itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.deploy.prometheus import (
    PrometheusError,
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

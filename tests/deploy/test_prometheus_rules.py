"""The Prometheus scrape config and alert rules, checked and unit-tested by promtool."""

from __future__ import annotations

from typing import Any

import yaml

from tests.deploy.metric_names import series_names
from tests.deploy.paths import DEPLOY
from tests.deploy.promql import metric_names
from tests.deploy.tools import run_tool, system_tool

PROMETHEUS = DEPLOY / "prometheus"
RULES = PROMETHEUS / "rules" / "healthd.rules.yml"
RULE_TESTS = PROMETHEUS / "rules" / "tests" / "healthd.rules.test.yml"

#: The alerts the README and the runbooks name; each must exist and be unit-tested.
EXPECTED_ALERTS = {
    "HealthdDown",
    "HealthdReplicaDown",
    "HealthdAlertLeaseUnheld",
    "HealthdProbesStale",
    "HealthdAlertOutboxStuck",
    "HealthdAlertsRejected",
    "HealthdBridgeUnreachable",
    "HealthdIntegrationFailingLong",
    "HealthdMetricsDetailOmitted",
}


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_scrape_config_is_valid_and_loads_the_rules() -> None:
    run = run_tool([system_tool("promtool"), "check", "config", str(PROMETHEUS / "prometheus.yml")])
    assert run.returncode == 0, run.explain()
    assert "1 rule files found" in run.stdout, run.explain()


def test_scrape_config_names_the_job_that_healthd_down_selects() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = [job["job_name"] for job in config["scrape_configs"]]
    down = next(rule for rule in _rules() if rule["alert"] == "HealthdDown")
    assert jobs == ["healthd"]
    assert down["expr"].count('up{job="healthd"}') == 2


def test_alert_rules_are_valid() -> None:
    run = run_tool([system_tool("promtool"), "check", "rules", str(RULES)])
    assert run.returncode == 0, run.explain()


def test_alert_rules_unit_tests_pass() -> None:
    run = run_tool([system_tool("promtool"), "test", "rules", str(RULE_TESTS)])
    assert run.returncode == 0, run.explain()


def test_every_expected_alert_is_defined_with_a_severity_and_a_summary() -> None:
    rules = {str(rule["alert"]): rule for rule in _rules()}
    assert set(rules) == EXPECTED_ALERTS
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert rule["annotations"]["summary"], name


def test_every_alert_has_a_unit_test_where_it_fires_and_one_where_it_does_not() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    fires = {case["alertname"] for case in cases if case.get("exp_alerts")}
    silent = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert fires == EXPECTED_ALERTS
    assert silent == EXPECTED_ALERTS


def test_rules_select_only_metrics_healthd_exports_and_up() -> None:
    known = series_names() | {"up"}
    for rule in _rules():
        unknown = metric_names(rule["expr"]) - known
        assert not unknown, f"{rule['alert']} selects {sorted(unknown)}"

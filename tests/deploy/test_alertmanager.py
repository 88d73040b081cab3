"""The Alertmanager example, checked by Debian's amtool."""

from __future__ import annotations

import yaml

from tests.deploy.paths import DEPLOY
from tests.deploy.test_prometheus_rules import EXPECTED_ALERTS
from tests.deploy.tools import run_tool, system_tool

ALERTMANAGER = DEPLOY / "alertmanager" / "alertmanager.yml"


def _config() -> dict[str, object]:
    config: dict[str, object] = yaml.safe_load(ALERTMANAGER.read_text())
    return config


def test_alertmanager_example_is_valid() -> None:
    run = run_tool([system_tool("amtool"), "check-config", str(ALERTMANAGER)])
    assert run.returncode == 0, run.explain()


def test_pagerduty_routing_keys_come_from_files_only() -> None:
    receivers = _config()["receivers"]
    assert isinstance(receivers, list)
    configs = [pd for receiver in receivers for pd in receiver.get("pagerduty_configs", [])]
    assert configs
    for pd in configs:
        assert "routing_key" not in pd and "service_key" not in pd
        assert pd["routing_key_file"].startswith("/")


def test_inhibit_rules_name_only_alerts_that_exist() -> None:
    inhibit = _config()["inhibit_rules"]
    assert isinstance(inhibit, list)
    text = yaml.safe_dump(inhibit)
    named = {name for name in EXPECTED_ALERTS if name in text}
    assert "HealthdDown" in named
    for rule in inhibit:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            assert matcher.startswith("alertname"), matcher
            alternatives = matcher.split('"')[1].split("|")
            assert set(alternatives) <= EXPECTED_ALERTS, matcher

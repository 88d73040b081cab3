from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from healthd.alerts.settings import AlertingSettings, MaintenanceWindow

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def error_of(data: dict[str, Any]) -> tuple[tuple[int | str, ...], str]:
    """The location and message of the first validation error."""
    with pytest.raises(ValidationError) as info:
        AlertingSettings.model_validate(data)
    error = info.value.errors()[0]
    return error["loc"], error["msg"]


def test_defaults_match_the_documented_policy():
    settings = AlertingSettings()
    assert settings.pagerduty is None
    assert settings.rules.bridge_unreachable.page_after == timedelta(minutes=10)
    assert (settings.rules.provider_outage.min_share, settings.rules.provider_outage.min_count) == (
        0.3,
        3,
    )
    assert settings.rules.egress_down.min_providers == 2
    assert (settings.outbox.backoff_initial, settings.outbox.backoff_max) == (
        timedelta(seconds=5),
        timedelta(minutes=5),
    )


def test_unknown_keys_are_rejected_at_their_path():
    loc, _ = error_of({"rules": {"bridge_unreachable": {"page_afer": "5m"}}})
    assert loc == ("rules", "bridge_unreachable", "page_afer")


def test_events_url_must_be_https(monkeypatch):
    monkeypatch.setenv("PD_KEY", "k" * 32)
    loc, msg = error_of(
        {"pagerduty": {"routing_key": "env:PD_KEY", "events_url": "http://127.0.0.1:8443"}}
    )
    assert loc == ("pagerduty", "events_url")
    assert "https://" in msg


def test_unset_routing_key_env_var_names_the_variable(monkeypatch):
    monkeypatch.delenv("PD_KEY", raising=False)
    assert error_of({"pagerduty": {"routing_key": "env:PD_KEY"}}) == (
        ("pagerduty", "routing_key"),
        "environment variable 'PD_KEY' is not set",
    )


def test_literal_routing_key_is_rejected_and_never_echoed():
    literal = "abcdef0123456789abcdef0123456789"
    with pytest.raises(ValidationError) as info:
        AlertingSettings.model_validate({"pagerduty": {"routing_key": literal}})
    assert literal not in str(info.value)


def test_missing_ca_bundle_is_rejected(monkeypatch, tmp_path):
    monkeypatch.setenv("PD_KEY", "k" * 32)
    loc, _ = error_of(
        {"pagerduty": {"routing_key": "env:PD_KEY", "ca_bundle": str(tmp_path / "none.pem")}}
    )
    assert loc == ("pagerduty", "ca_bundle")


def test_bad_duration_is_rejected_with_its_value():
    assert error_of({"rules": {"bridge_unreachable": {"page_after": "10 minutes"}}}) == (
        ("rules", "bridge_unreachable", "page_after"),
        "invalid duration '10 minutes'",
    )


def test_maintenance_window_must_end_after_it_starts():
    loc, msg = error_of({"maintenance": [{"name": "dc1", "start": T0, "end": T0}]})
    assert loc == ("maintenance", 0)
    assert "'dc1' ends before it starts" in msg


def test_maintenance_times_must_carry_a_timezone():
    loc, _ = error_of(
        {"maintenance": [{"name": "dc1", "start": "2026-03-01T12:00", "end": "2026-03-01T13:00"}]}
    )
    assert loc == ("maintenance", 0, "start")


@pytest.mark.parametrize(
    ("at", "rule", "tenant", "silenced"),
    [
        (T0, "bridge_unreachable", "acme", True),
        (T0 + timedelta(minutes=59), "bridge_unreachable", "acme", True),
        (T0 + timedelta(hours=1), "bridge_unreachable", "acme", False),  # end is exclusive
        (T0 - timedelta(seconds=1), "bridge_unreachable", "acme", False),
        (T0, "provider_outage", "acme", False),  # rule not listed
        (T0, "bridge_unreachable", "globex", False),  # tenant not selected
        (T0, "bridge_unreachable", None, False),  # a selector never matches a missing value
    ],
)
def test_maintenance_window_matching(at, rule, tenant, silenced):
    window = MaintenanceWindow(
        name="dc1",
        start=T0,
        end=T0 + timedelta(hours=1),
        rules=("bridge_unreachable",),
        tenants=("acme",),
    )
    assert window.silences(rule, at, tenant=tenant) is silenced

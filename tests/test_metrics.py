"""Metrics from a fresh registry: the collector's series and the runner's instruments."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from healthd.metrics import (
    AlertView,
    HealthCollector,
    Instruments,
    IntegrationSeries,
    MetricsEndpoint,
    View,
    exposition,
)
from healthd.model import (
    Category,
    Finding,
    Integration,
    IntegrationState,
    ProbeResult,
    ProviderTraits,
    Status,
    Thresholds,
)
from healthd.registry import probe_class

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
# A state that needs per-integration series: probed, and failing.
FAILED: dict[str, Any] = {
    "status": Status.FAILING,
    "last_result_status": Status.FAILING,
    "last_checked": NOW,
}


def integration(
    iid: str,
    provider: str = "imessage_bridge",
    tenant: str = "platform",
    traits: ProviderTraits | None = None,
) -> Integration:
    """As config builds one: with the traits its probe class declares, unless given."""
    return Integration(
        id=iid,
        provider=provider,
        tenant=tenant,
        base_url="http://127.0.0.1:1",
        page=False,
        interval=timedelta(seconds=60),
        timeout=timedelta(seconds=10),
        thresholds=Thresholds(),
        traits=traits or probe_class(provider).traits,
    )


def registry_with(views: list[View], alerts: AlertView | None = None) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(
        HealthCollector(
            lambda: views,
            lambda: alerts or AlertView(pending={}, oldest_pending_age=None, open_incidents={}),
            lambda: NOW.timestamp(),
        )
    )
    return registry


def test_integration_status_has_one_series_per_status_with_1_for_the_current() -> None:
    state = IntegrationState(integration_id="b1", status=Status.FAILING, last_checked=NOW)
    reg = registry_with([View(integration("b1"), state, 0.2)])
    labels = {"integration": "b1", "provider": "imessage_bridge", "tenant": "platform"}
    values = {
        s.value: reg.get_sample_value("healthd_integration_status", {**labels, "status": s.value})
        for s in Status
    }
    assert values == {"ok": 0, "degraded": 0, "failing": 1, "unreachable": 0, "unknown": 0}


def test_probe_success_follows_the_latest_run_not_the_debounced_status() -> None:
    state = IntegrationState(
        integration_id="b1", status=Status.OK, last_checked=NOW, last_result_status=Status.FAILING
    )
    reg = registry_with([View(integration("b1"), state, 0.2)])
    labels = {"integration": "b1", "provider": "imessage_bridge", "tenant": "platform"}
    assert reg.get_sample_value("healthd_probe_success", labels) == 0


def test_bridge_unreachable_seconds_counts_from_unreachable_since() -> None:
    state = IntegrationState(integration_id="b1", unreachable_since=NOW - timedelta(minutes=12))
    reg = registry_with([View(integration("b1"), state, None)])
    value = reg.get_sample_value(
        "healthd_bridge_unreachable_seconds", {"integration": "b1", "tenant": "platform"}
    )
    assert value == 720


@pytest.mark.parametrize(("provider", "tracks"), [("imessage_bridge", False), ("twilio", True)])
def test_unreachable_seconds_follow_the_traits_not_the_provider_name(
    provider: str, tracks: bool
) -> None:
    traits = ProviderTraits(display_name="X", code_prefix="x", tracks_unreachable=tracks)
    state = IntegrationState(
        integration_id="i1",
        status=Status.UNREACHABLE,
        last_checked=NOW,
        unreachable_since=NOW - timedelta(minutes=1),
    )
    reg = registry_with([View(integration("i1", provider, traits=traits), state, 0.2)])
    value = reg.get_sample_value(
        "healthd_bridge_unreachable_seconds", {"integration": "i1", "tenant": "platform"}
    )
    assert (value is not None) is tracks


def test_an_integration_never_probed_has_no_success_or_timestamp_series() -> None:
    reg = registry_with([View(integration("b1"), IntegrationState(integration_id="b1"), None)])
    labels = {"integration": "b1", "provider": "imessage_bridge", "tenant": "platform"}
    assert reg.get_sample_value("healthd_probe_success", labels) is None
    assert reg.get_sample_value("healthd_integration_last_check_timestamp_seconds", labels) is None


def test_outbox_and_incident_gauges_come_from_the_alert_view() -> None:
    reg = registry_with(
        [], AlertView(pending={"pagerduty": 2}, oldest_pending_age=42.0, open_incidents={"x": 1})
    )
    assert reg.get_sample_value("healthd_alert_outbox_pending", {"channel": "pagerduty"}) == 2
    assert reg.get_sample_value("healthd_alert_outbox_oldest_pending_age_seconds") == 42
    assert reg.get_sample_value("healthd_open_incidents", {"rule": "x"}) == 1


def twilio_runs(*findings: Finding, runs: int = 1) -> CollectorRegistry:
    """A fresh registry whose instruments saw `runs` runs of Acme's Twilio integration,
    each with `findings` (the run's status the worst of theirs)."""
    reg = CollectorRegistry()
    instruments = Instruments(reg)
    result = ProbeResult.from_findings(
        integration_id="t1", started_at=NOW, duration_seconds=0.3, findings=findings
    )
    for _ in range(runs):
        instruments.observe(integration("t1", "twilio", "acme"), result)
    return reg


def findings_total(
    reg: CollectorRegistry, code: str, provider_code: str, category: str
) -> float | None:
    """`healthd_findings_total` of one Twilio finding code (None: never counted)."""
    labels = {
        "provider": "twilio",
        "code": code,
        "provider_code": provider_code,
        "category": category,
    }
    return reg.get_sample_value("healthd_findings_total", labels)


def test_instruments_count_non_ok_findings_by_code_and_category() -> None:
    reg = twilio_runs(
        Finding(
            check="auth",
            status=Status.FAILING,
            code="twilio.auth_invalid",
            summary="s",
            category=Category.ACCOUNT,
            provider_code="20003",
        ),
        Finding(
            check="platform", status=Status.OK, code="twilio.platform_operational", summary="s"
        ),
    )
    assert findings_total(reg, "twilio.auth_invalid", "20003", "account") == 1
    assert findings_total(reg, "twilio.platform_operational", "", "unknown") is None
    assert reg.get_sample_value("healthd_probe_duration_seconds_count", {"provider": "twilio"}) == 1
    assert (
        reg.get_sample_value("healthd_probes_total", {"provider": "twilio", "status": "failing"})
        == 1
    )


async def test_metrics_endpoint_serves_one_rendering_per_max_age() -> None:
    views: list[View] = []
    reg = registry_with(views)
    endpoint = MetricsEndpoint(reg, max_age=3600)
    first = await endpoint.render()
    failing = IntegrationState(integration_id="b2", status=Status.FAILING, last_checked=NOW)
    views.append(View(integration("b2"), failing, None))
    assert await endpoint.render() == first
    assert b'integration="b2"' in await MetricsEndpoint(reg, max_age=0).render()


# Label values that need escaping in text format 0.0.4, and some that do not but are easy
# to get wrong (unicode, braces, commas, equals signs).
AWKWARD = ('quote"d', "back\\slash", "new\nline", "ünïcødé-☃", 'all"\\\n{x=1,y}', "")


def awkward_registry() -> tuple[CollectorRegistry, IntegrationSeries]:
    """The daemon's registry shape (instruments, then the collector) over awkward names,
    every integration needing attention so all of them have their detail series."""
    registry = CollectorRegistry()
    instruments = Instruments(registry)
    series = IntegrationSeries()
    for n, name in enumerate(AWKWARD):
        for provider in ("twilio", "imessage_bridge"):
            status = list(Status)[n % len(Status)]
            state = IntegrationState(
                integration_id=f"{provider}:{name}",
                status=status,
                last_checked=NOW - timedelta(seconds=n, microseconds=123_457 * n),
                last_success=NOW - timedelta(hours=n) if n % 2 else None,
                unreachable_since=NOW - timedelta(minutes=n) if n % 3 == 0 else None,
                # An ok one whose latest run failed (debounced): every one needs detail.
                last_result_status=Status.FAILING if status is Status.OK else status,
            )
            view = View(
                integration(f"{provider}:{name}", provider, tenant=f"tenant {name}"),
                state,
                [None, 0.0, 1e-7, 0.123456789, 12345678.9, 3.0][n],
            )
            series.update(view)
            instruments.observe(
                view.integration,
                ProbeResult(
                    integration_id=view.integration.id,
                    status=status,
                    started_at=NOW,
                    duration_seconds=view.last_duration or 0.0,
                    findings=(
                        Finding(
                            check="auth",
                            status=Status.FAILING,
                            code=f"code {name}",
                            summary="s",
                            provider_code=name,
                        ),
                    ),
                ),
            )
    instruments.alert_event('rule "x"', "trigger", "sent")
    registry.register(
        HealthCollector(
            series,
            lambda: AlertView(
                pending={"pagerduty": 1}, oldest_pending_age=1.5, open_incidents={"r\\1": 1}
            ),
            lambda: NOW.timestamp(),
        )
    )
    return registry, series


def test_exposition_is_byte_for_byte_what_generate_latest_writes() -> None:
    registry, _ = awkward_registry()
    assert exposition(registry) == generate_latest(registry)


def test_exposition_parses_to_the_same_families_as_generate_latest() -> None:
    registry, _ = awkward_registry()
    ours = list(text_string_to_metric_families(exposition(registry).decode()))
    theirs = list(text_string_to_metric_families(generate_latest(registry).decode()))
    assert ours == theirs
    names = {s.labels.get("integration") for f in ours for s in f.samples}
    assert {f"twilio:{name}" for name in AWKWARD} <= names


def test_exposition_shows_an_integration_run_after_the_previous_scrape() -> None:
    registry, series = awkward_registry()
    before = exposition(registry)
    state = IntegrationState(integration_id="twilio:", status=Status.FAILING, last_checked=NOW)
    series.update(View(integration("twilio:", "twilio", tenant="tenant "), state, 0.5))
    after = exposition(registry)
    assert after != before
    assert after == generate_latest(registry)
    labels = {"integration": "twilio:", "provider": "twilio", "tenant": "tenant "}
    assert registry.get_sample_value("healthd_probe_last_duration_seconds", labels) == 0.5


def test_get_sample_value_reads_the_rendered_families() -> None:
    registry, _ = awkward_registry()
    labels = {"integration": 'twilio:quote"d', "provider": "twilio", "tenant": 'tenant quote"d'}
    assert registry.get_sample_value("healthd_integration_status", {**labels, "status": "ok"}) == 1
    assert registry.get_sample_value("healthd_probe_last_duration_seconds", labels) is None


def test_series_text_escapes_label_values_as_the_text_format_requires() -> None:
    series = IntegrationSeries.of(
        [View(integration('a"b\\c\nd'), IntegrationState(integration_id="x", **FAILED), None)]
    )
    registry = CollectorRegistry()
    registry.register(
        HealthCollector(series, lambda: AlertView({}, None, {}), lambda: NOW.timestamp())
    )
    assert b'integration="a\\"b\\\\c\\nd"' in exposition(registry)


def test_rendered_families_refuse_samples_set_from_outside() -> None:
    registry, _ = awkward_registry()
    family = next(f for f in registry.collect() if f.name == "healthd_probe_success")
    with pytest.raises(TypeError):
        family.samples = family.samples[:1]


def test_a_finding_seen_in_three_runs_counts_three_not_its_messages_three_times() -> None:
    reg = twilio_runs(
        Finding(
            check="delivery",
            status=Status.OK,
            code="twilio.delivery_errors",
            summary="s",
            category=Category.RECIPIENT,
            provider_code="21610",
            count=7,  # the same 7 opt-outs, read again by every run
        ),
        runs=3,
    )
    assert findings_total(reg, "twilio.delivery_errors", "21610", "recipient") == 3


async def test_metrics_endpoint_serves_what_exposition_writes() -> None:
    registry, _ = awkward_registry()
    assert await MetricsEndpoint(registry, max_age=0).render() == exposition(registry)


class CountingCollector(Collector):
    """Counts its collections: one per rendering."""

    def __init__(self) -> None:
        self.collections = 0

    def collect(self) -> Iterator[Metric]:
        self.collections += 1
        return iter(())


async def test_scrapes_arriving_while_one_renders_share_its_rendering() -> None:
    registry = CollectorRegistry()
    collector = CountingCollector()
    registry.register(collector)
    endpoint = MetricsEndpoint(registry, max_age=3600)
    bodies = await asyncio.gather(*(endpoint.render() for _ in range(3)))
    assert collector.collections == 1
    assert len(set(bodies)) == 1


def test_runs_are_counted_per_provider_and_status_run_after_run() -> None:
    reg = CollectorRegistry()
    instruments = Instruments(reg)
    runs = [("twilio", Status.OK), ("twilio", Status.FAILING), ("sendgrid", Status.OK)] * 2
    for n, (provider, status) in enumerate(runs):
        result = ProbeResult(
            integration_id=f"i{n}",
            status=status,
            started_at=NOW,
            duration_seconds=0.2,
            findings=(),
        )
        instruments.observe(integration(f"i{n}", provider), result)

    def probes(provider: str, status: str) -> float | None:
        return reg.get_sample_value(
            "healthd_probes_total", {"provider": provider, "status": status}
        )

    assert (probes("twilio", "ok"), probes("twilio", "failing"), probes("sendgrid", "ok")) == (
        2,
        2,
        2,
    )
    assert probes("sendgrid", "failing") is None
    durations = {"provider": "twilio"}
    assert reg.get_sample_value("healthd_probe_duration_seconds_count", durations) == 4
    assert reg.get_sample_value("healthd_probe_duration_seconds_sum", durations) == pytest.approx(
        0.8
    )

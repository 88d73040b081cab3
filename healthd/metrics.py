"""Prometheus metrics: one collector that reads a snapshot, plus the runner's few instruments.

Per-integration series come from `HealthCollector`, which reads the runner's in-memory
view at scrape time: nothing has to be kept in sync, and an integration removed from the
config disappears from /metrics with it. Counters and the per-provider histogram are
updated by the runner and the outbox only (`Instruments`). Rendering costs about 11 µs
per series and holds the interpreter, so `MetricsEndpoint` renders on a worker thread at
most once a second and serves the latest rendering (DESIGN.md).
"""

from __future__ import annotations

import asyncio
import platform
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from healthd import __version__
from healthd.model import Integration, IntegrationState, ProbeResult, Status

# Help texts are constants so the README's metrics reference can be generated from them.
HELP = {
    "healthd_probe_success": "1 if the integration's latest probe found it ok or degraded, else 0.",
    "healthd_probe_duration_seconds": "Probe run duration by provider.",
    "healthd_probe_last_duration_seconds": "Duration of the integration's latest probe run.",
    "healthd_probes_total": "Probe runs by provider and raw result status.",
    "healthd_integration_status": "Effective (debounced) status; 1 for the current status.",
    "healthd_integration_last_success_timestamp_seconds": "When the latest good probe ran.",
    "healthd_integration_last_check_timestamp_seconds": "When the latest probe ran.",
    "healthd_bridge_unreachable_seconds": (
        "How long the iMessage bridge has been continuously unreachable; 0 when reachable."
    ),
    "healthd_findings_total": (
        "Problems seen by probes (a finding's message count, or 1), by code and category; "
        "includes recipient and content errors, which never change health."
    ),
    "healthd_alert_events_total": "Alert events handled by the outbox, by rule, action, outcome.",
    "healthd_alert_outbox_pending": "Alert events waiting in the outbox, by channel.",
    "healthd_alert_outbox_oldest_pending_age_seconds": "Age of the oldest waiting alert event.",
    "healthd_open_incidents": "Incidents healthd holds open, by rule.",
    "healthd_build_info": "healthd's version; always 1.",
}

DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BRIDGE_PROVIDER = "imessage_bridge"


@dataclass(frozen=True, slots=True)
class View:
    """What the collector needs of one integration at scrape time."""

    integration: Integration
    state: IntegrationState
    last_duration: float | None


@dataclass(frozen=True, slots=True)
class AlertView:
    pending: dict[str, int]
    oldest_pending_age: float | None
    open_incidents: dict[str, int]


class HealthCollector(Collector):
    """Yields the per-integration series from `views()` and the outbox/incident gauges."""

    def __init__(
        self,
        views: Callable[[], Sequence[View]],
        alerts: Callable[[], AlertView],
        now: Callable[[], float],
    ) -> None:
        self._views = views
        self._alerts = alerts
        self._now = now

    def collect(self) -> Iterator[Metric]:
        labels = ["integration", "provider", "tenant"]
        success = GaugeMetricFamily(
            "healthd_probe_success", HELP["healthd_probe_success"], labels=labels
        )
        last_duration = GaugeMetricFamily(
            "healthd_probe_last_duration_seconds",
            HELP["healthd_probe_last_duration_seconds"],
            labels=labels,
        )
        status = GaugeMetricFamily(
            "healthd_integration_status",
            HELP["healthd_integration_status"],
            labels=[*labels, "status"],
        )
        last_success = GaugeMetricFamily(
            "healthd_integration_last_success_timestamp_seconds",
            HELP["healthd_integration_last_success_timestamp_seconds"],
            labels=labels,
        )
        last_check = GaugeMetricFamily(
            "healthd_integration_last_check_timestamp_seconds",
            HELP["healthd_integration_last_check_timestamp_seconds"],
            labels=labels,
        )
        bridge = GaugeMetricFamily(
            "healthd_bridge_unreachable_seconds",
            HELP["healthd_bridge_unreachable_seconds"],
            labels=["integration", "tenant"],
        )
        now = self._now()
        for view in self._views():
            i, st = view.integration, view.state
            lv = [i.id, i.provider, i.tenant]
            for s in Status:
                status.add_metric([*lv, s.value], 1.0 if st.status is s else 0.0)
            if st.last_checked is not None:
                success.add_metric(lv, 0.0 if st.last_result_status.is_bad else 1.0)
                last_check.add_metric(lv, st.last_checked.timestamp())
            if st.last_success is not None:
                last_success.add_metric(lv, st.last_success.timestamp())
            if view.last_duration is not None:
                last_duration.add_metric(lv, view.last_duration)
            if i.provider == BRIDGE_PROVIDER:
                since = st.unreachable_since
                bridge.add_metric(
                    [i.id, i.tenant], max(0.0, now - since.timestamp()) if since else 0.0
                )
        yield from (success, last_duration, status, last_success, last_check, bridge)
        yield from self._alert_metrics()

    def _alert_metrics(self) -> Iterable[Metric]:
        av = self._alerts()
        pending = GaugeMetricFamily(
            "healthd_alert_outbox_pending", HELP["healthd_alert_outbox_pending"], labels=["channel"]
        )
        for channel, count in sorted(av.pending.items()):
            pending.add_metric([channel], count)
        if "pagerduty" not in av.pending:
            pending.add_metric(["pagerduty"], 0)
        oldest = GaugeMetricFamily(
            "healthd_alert_outbox_oldest_pending_age_seconds",
            HELP["healthd_alert_outbox_oldest_pending_age_seconds"],
            value=av.oldest_pending_age or 0.0,
        )
        incidents = GaugeMetricFamily(
            "healthd_open_incidents", HELP["healthd_open_incidents"], labels=["rule"]
        )
        for rule, count in sorted(av.open_incidents.items()):
            incidents.add_metric([rule], count)
        build = GaugeMetricFamily(
            "healthd_build_info", HELP["healthd_build_info"], labels=["version", "python"]
        )
        build.add_metric([__version__, platform.python_version()], 1)
        return (pending, oldest, incidents, build)


class Instruments:
    """The counters and histogram that the runner and the outbox update, on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.probe_duration = Histogram(
            "healthd_probe_duration_seconds",
            HELP["healthd_probe_duration_seconds"],
            ["provider"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.probes = Counter(
            "healthd_probes",
            HELP["healthd_probes_total"],
            ["provider", "status"],
            registry=registry,
        )
        self.findings = Counter(
            "healthd_findings",
            HELP["healthd_findings_total"],
            ["provider", "code", "provider_code", "category"],
            registry=registry,
        )
        self.alert_events = Counter(
            "healthd_alert_events",
            HELP["healthd_alert_events_total"],
            ["rule", "action", "outcome"],
            registry=registry,
        )

    def observe(self, integration: Integration, result: ProbeResult) -> None:
        self.probe_duration.labels(integration.provider).observe(result.duration_seconds)
        self.probes.labels(integration.provider, result.status.value).inc()
        for f in result.findings:
            if f.status is not Status.OK or f.provider_code is not None:
                self.findings.labels(
                    integration.provider, f.code, f.provider_code or "", f.category.value
                ).inc(f.count or 1)

    def alert_event(self, rule: str, action: str, outcome: str) -> None:
        self.alert_events.labels(rule, action, outcome).inc()


class MetricsEndpoint:
    """Renders the registry off the event loop, at most once per `max_age` seconds.

    Concurrent scrapes share one rendering; probes keep running while it is made.
    """

    def __init__(self, registry: CollectorRegistry, max_age: float = 1.0) -> None:
        self._registry = registry
        self._max_age = max_age
        self._body = b""
        self._rendered_at = float("-inf")
        self._lock = asyncio.Lock()

    async def render(self) -> bytes:
        async with self._lock:
            if time.monotonic() - self._rendered_at >= self._max_age:
                self._body = await asyncio.to_thread(generate_latest, self._registry)
                self._rendered_at = time.monotonic()
            return self._body

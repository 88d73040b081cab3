"""Prometheus metrics: fleet aggregates always, per-integration detail for the integrations
that need attention, and the runner's instruments.

The series budget (README, "Series budget"): an integration that is ok has no series of
its own. It is counted in `healthd_integrations{provider,status}` and its next due probe
feeds `healthd_probe_overdue_seconds{provider}`, a few series per provider whatever the
fleet's size. An integration that needs attention (`needs_detail`: its effective status or
its latest run is not ok, or its unreachable timer runs) also has its detail: the five
families in FAMILIES plus, for a bridge, `healthd_bridge_unreachable_seconds`, at most 10
series. At most `detail_limit` integrations have detail (`api.metrics_detail_limit`):
bridges first, then in the order they came to need attention, so a provider outage that
breaks 30,000 accounts keeps the ones already broken and the page-worthy ones, and
`healthd_integration_detail_omitted` says how many were left out. So one target serves at
most 10 x `detail_limit` per-integration series plus the bounded rest.

`IntegrationSeries` keeps that state as the runner records runs (`update`, after every
probe run): the counts are adjusted, and a detailed integration's lines are formatted then,
not at scrape time. `exposition` joins the kept text and formats only the few other series
with prometheus_client, byte for byte what `generate_latest` writes (tests/test_metrics.py
compares the two). `HealthCollector` yields the same families to the registry, so
`get_sample_value` and `generate_latest` keep working on it. Values that depend on "now"
(the bridges' unreachable time, the overdue seconds) are computed at scrape time from kept
timestamps. `MetricsEndpoint` renders on the event loop at most once a second; the cost
follows the detailed integrations, not the fleet (bench/RESULTS.md, "Issue 17").
"""

from __future__ import annotations

import asyncio
import platform
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, islice

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from healthd.model import DeliveryOutcome, Integration, IntegrationState, ProbeResult, Status
from healthd.version import __version__

BRIDGE_SECONDS = "healthd_bridge_unreachable_seconds"
# Integrations with per-integration series at most, unless api.metrics_detail_limit says
# otherwise: 5,000 x at most 10 series keeps one target within 50,000 series (README).
DETAIL_LIMIT = 5_000

# Help texts are constants so the README's metrics reference can be generated from them.
HELP = {
    "healthd_probe_success": "1 if the integration's latest probe found it ok or degraded, else 0.",
    "healthd_probe_duration_seconds": "Probe run duration by provider.",
    "healthd_probe_last_duration_seconds": "Duration of the integration's latest probe run.",
    "healthd_probes_total": "Probe runs by provider and raw result status.",
    "healthd_probe_errors_total": (
        "Probe runs that failed inside healthd (reason crashed: a bug in the probe); "
        "such a run counts neither for nor against the integration."
    ),
    "healthd_integration_status": "Effective (debounced) status; 1 for the current status.",
    "healthd_integration_last_success_timestamp_seconds": "When the latest good probe ran.",
    "healthd_integration_last_check_timestamp_seconds": "When the latest probe ran.",
    "healthd_bridge_unreachable_seconds": (
        "How long the iMessage bridge has been continuously unreachable; 0 when reachable."
    ),
    "healthd_findings_total": (
        "Problems seen by probe runs, one per finding per run, by code and category; includes "
        "recipient and content errors, which never change health. Messages are counted once "
        "each in healthd_delivery_messages_total."
    ),
    "healthd_alert_events_total": "Alert events handled by the outbox, by rule, action, outcome.",
    "healthd_alert_outbox_pending": "Alert events waiting in the outbox, by channel.",
    "healthd_alert_outbox_oldest_pending_age_seconds": "Age of the oldest waiting alert event.",
    "healthd_open_incidents": "Incidents healthd holds open, by rule.",
    "healthd_build_info": "healthd's version; always 1.",
    "healthd_store_healthy": (
        "1 while healthd's store takes writes, 0 while they fail (state and pages kept in memory)."
    ),
    "healthd_store_errors_total": "Store calls that failed, by operation.",
    "healthd_integrations": (
        "Integrations by provider and effective status, the whole fleet (never probed: unknown)."
    ),
    "healthd_probe_overdue_seconds": (
        "How far the provider's most overdue integration is past its next probe "
        "(latest check plus interval); 0 when none is."
    ),
    "healthd_integration_detail_omitted": (
        "Integrations needing attention left without per-integration series by "
        "api.metrics_detail_limit."
    ),
}

# How many series each family has: the budget the README states (healthd.reference).
SERIES = {
    "healthd_probe_success": "1 per detailed integration (probed)",
    "healthd_probe_duration_seconds": "15 per provider (12 buckets, sum, count, created)",
    "healthd_probe_last_duration_seconds": "1 per detailed integration",
    "healthd_probes_total": "2 (total, created) per provider and raw status seen",
    "healthd_probe_errors_total": "2 per provider and reason seen",
    "healthd_integration_status": "5 per detailed integration",
    "healthd_integration_last_success_timestamp_seconds": "1 per detailed integration",
    "healthd_integration_last_check_timestamp_seconds": "1 per detailed integration (probed)",
    BRIDGE_SECONDS: "1 per detailed bridge",
    "healthd_findings_total": "2 per provider, code and category seen (the catalog bounds them)",
    "healthd_alert_events_total": "2 per rule, action and outcome seen",
    "healthd_alert_outbox_pending": "1 per channel",
    "healthd_alert_outbox_oldest_pending_age_seconds": "1",
    "healthd_open_incidents": "1 per rule with incidents",
    "healthd_build_info": "1",
    "healthd_store_healthy": "1",
    "healthd_store_errors_total": "2 per store operation that failed",
    "healthd_integrations": "5 per provider",
    "healthd_probe_overdue_seconds": "1 per provider",
    "healthd_integration_detail_omitted": "1",
}

DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


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


# The per-integration families in exposition order, with their label names as the
# collector declares them. The rendered lines put labels in sorted order, as
# prometheus_client writes them ("status" sorts between "provider" and "tenant").
_LABELS = ("integration", "provider", "tenant")
FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("healthd_probe_success", _LABELS),
    ("healthd_probe_last_duration_seconds", _LABELS),
    ("healthd_integration_status", (*_LABELS, "status")),
    ("healthd_integration_last_success_timestamp_seconds", _LABELS),
    ("healthd_integration_last_check_timestamp_seconds", _LABELS),
)
_SUCCESS, _LAST_DURATION, _STATUS, _LAST_SUCCESS, _LAST_CHECK = range(len(FAMILIES))

# prometheus_client's own float formatting (Go's: 1.7e+09, +Inf), so both paths agree.
_float_text: Callable[[float], str] = floatToGoString


def _escape(value: str) -> str:
    """Label value escaping of text format 0.0.4: backslash, double quote, newline."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _header(name: str) -> bytes:
    help_text = HELP[name].replace("\\", "\\\\").replace("\n", "\\n")
    return f"# HELP {name} {help_text}\n# TYPE {name} gauge\n".encode()


_HEADERS = {name: _header(name) for name in (*(n for n, _ in FAMILIES), BRIDGE_SECONDS)}


def _unreachable_seconds(view: View, now: float) -> float:
    since = view.state.unreachable_since
    return max(0.0, now - since.timestamp()) if since else 0.0


def _samples(view: View) -> Iterator[tuple[int, str | None, float]]:
    """One integration's series: (index in FAMILIES, status label or None, value).

    The single statement of which series exist: an integration never probed has no
    success or timestamp series, and no last duration until a run finished.
    """
    st = view.state
    if st.last_checked is not None:
        yield _SUCCESS, None, 0.0 if st.last_result_status.is_bad else 1.0
    if view.last_duration is not None:
        yield _LAST_DURATION, None, view.last_duration
    for s in Status:
        yield _STATUS, s.value, 1.0 if st.status is s else 0.0
    if st.last_success is not None:
        yield _LAST_SUCCESS, None, st.last_success.timestamp()
    if st.last_checked is not None:
        yield _LAST_CHECK, None, st.last_checked.timestamp()


def _render(view: View) -> tuple[bytes, ...]:
    """The text of one integration's samples, one chunk per family in FAMILIES."""
    i = view.integration
    head = f'integration="{_escape(i.id)}",provider="{_escape(i.provider)}"'
    tail = f'tenant="{_escape(i.tenant)}"'
    chunks: list[list[str]] = [[] for _ in FAMILIES]
    for k, status, value in _samples(view):
        labels = f"{head},{tail}" if status is None else f'{head},status="{_escape(status)}",{tail}'
        chunks[k].append(f"{FAMILIES[k][0]}{{{labels}}} {_float_text(value)}\n")
    return tuple("".join(chunk).encode() for chunk in chunks)


def needs_detail(state: IntegrationState) -> bool:
    """Whether an integration gets per-integration series: the one statement of the rule.

    Its effective status or its latest run is not ok, or it has been unreachable since
    some time (a bridge's timer, which the backup page reads). An integration never probed
    has nothing to show beyond its count in `healthd_integrations{status="unknown"}`.
    """
    if state.unreachable_since is not None:
        return True
    if state.last_checked is None:
        return False
    return state.status is not Status.OK or state.last_result_status is not Status.OK


@dataclass(frozen=True, slots=True)
class Detail:
    """A detailed integration's kept text: one chunk per family, and a bridge's line head."""

    view: View
    chunks: tuple[bytes, ...]
    bridge_head: bytes | None


def _detail(view: View) -> Detail:
    i = view.integration
    head = None
    if i.tracks_unreachable:
        # The value depends on "now": only the text before it is kept.
        labels = f'integration="{_escape(i.id)}",tenant="{_escape(i.tenant)}"'
        head = f"{BRIDGE_SECONDS}{{{labels}}} ".encode()
    return Detail(view, _render(view), head)


@dataclass(frozen=True, slots=True)
class FleetView:
    """One scrape's aggregates: counts by (provider, status), each provider's earliest due
    probe (epoch seconds; absent while none of its integrations has been probed)."""

    counts: dict[tuple[str, Status], int]
    earliest_due: dict[str, float]


class IntegrationSeries:
    """The state `/metrics` renders, kept up to date as the runner records each run.

    `update` adjusts the fleet counts and due times and keeps a detailed integration's
    text rendered, or drops it when the integration no longer needs detail. Detailed
    integrations are kept in two insertion-ordered tiers (bridges, then the rest), the
    order `detail` hands them out under a limit. Written on the event loop; what `detail`
    and `fleet` return are copies.
    """

    def __init__(self) -> None:
        self._known: dict[str, tuple[str, Status]] = {}
        self._counts: dict[tuple[str, Status], int] = {}
        self._due: dict[str, dict[str, float]] = {}
        self._bridges: dict[str, Detail] = {}
        self._others: dict[str, Detail] = {}

    @classmethod
    def of(cls, views: Iterable[View]) -> IntegrationSeries:
        series = cls()
        for view in views:
            series.update(view)
        return series

    def update(self, view: View) -> None:
        i, st = view.integration, view.state
        previous = self._known.get(i.id)
        if previous is not None:
            self._counts[previous] -= 1
            self._due[previous[0]].pop(i.id, None)
        key = (i.provider, st.status)
        self._known[i.id] = key
        self._counts[key] = self._counts.get(key, 0) + 1
        due = self._due.setdefault(i.provider, {})
        if st.last_checked is not None:
            due[i.id] = st.last_checked.timestamp() + i.interval.total_seconds()
        tier, other = (
            (self._bridges, self._others) if i.tracks_unreachable else (self._others, self._bridges)
        )
        other.pop(i.id, None)
        if needs_detail(st):
            tier[i.id] = _detail(view)
        else:
            tier.pop(i.id, None)

    def remove(self, integration_id: str) -> None:
        """An integration taken out of the fleet (the registry API): its series and its
        place in the fleet counts go at once."""
        previous = self._known.pop(integration_id, None)
        if previous is not None:
            self._counts[previous] -= 1
            self._due[previous[0]].pop(integration_id, None)
        self._bridges.pop(integration_id, None)
        self._others.pop(integration_id, None)

    def detail(self, limit: int) -> tuple[list[Detail], int]:
        """At most `limit` detailed integrations, bridges first; and how many were left out."""
        chosen = list(islice(chain(self._bridges.values(), self._others.values()), limit))
        return chosen, len(self._bridges) + len(self._others) - len(chosen)

    def fleet(self) -> FleetView:
        providers = sorted(self._due)
        return FleetView(
            counts={(p, s): self._counts.get((p, s), 0) for p in providers for s in Status},
            earliest_due={p: min(self._due[p].values()) for p in providers if self._due[p]},
        )


class _Snapshot:
    """One scrape's detailed integrations, shared by its rendered families.

    Samples (the registry path) are built on first read only: a scrape through
    `exposition` never builds them.
    """

    def __init__(self, details: list[Detail], now: float) -> None:
        self.details = details
        self.now = now
        self._samples: list[list[Sample]] | None = None

    def families(self) -> Iterator[RenderedFamily]:
        for k, (name, _) in enumerate(FAMILIES):
            yield RenderedFamily(name, self, k)
        yield RenderedFamily(BRIDGE_SECONDS, self, len(FAMILIES))

    def samples(self, index: int) -> list[Sample]:
        if self._samples is None:
            families = [GaugeMetricFamily(n, HELP[n], labels=labels) for n, labels in FAMILIES]
            bridge = GaugeMetricFamily(
                BRIDGE_SECONDS, HELP[BRIDGE_SECONDS], labels=["integration", "tenant"]
            )
            for d in self.details:
                i = d.view.integration
                lv = [i.id, i.provider, i.tenant]
                for k, status, value in _samples(d.view):
                    families[k].add_metric(lv if status is None else [*lv, status], value)
                if d.bridge_head is not None:
                    bridge.add_metric([i.id, i.tenant], _unreachable_seconds(d.view, self.now))
            self._samples = [f.samples for f in (*families, bridge)]
        return self._samples[index]

    def text(self, index: int) -> bytes:
        if index < len(FAMILIES):
            return b"".join([d.chunks[index] for d in self.details])
        lines = []
        for d in self.details:
            if d.bridge_head is not None:
                seconds = _unreachable_seconds(d.view, self.now)
                text = _float_text(seconds) if seconds else "0.0"
                lines.append(d.bridge_head + text.encode() + b"\n")
        return b"".join(lines)


class RenderedFamily(Metric):
    """A gauge family whose exposition text is made without prometheus_client (`exposition`).

    `samples` is built from the same snapshot when something reads it, so the family
    behaves like any other in a registry.
    """

    def __init__(self, name: str, snapshot: _Snapshot, index: int) -> None:
        self._snapshot = snapshot
        self._index = index
        super().__init__(name, HELP[name], "gauge")

    @property
    def samples(self) -> list[Sample]:
        return self._snapshot.samples(self._index)

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        # Metric.__init__ starts every family with no samples; these come from the snapshot.
        if value:
            raise TypeError(f"{self.name}: samples come from the rendered snapshot")

    def text(self) -> bytes:
        return _HEADERS[self.name] + self._snapshot.text(self._index)


class _Families(Collector):
    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self._metrics)


def exposition(registry: Collector) -> bytes:
    """What `generate_latest(registry)` writes, byte for byte, with rendered families copied."""
    return exposition_text(list(registry.collect()))


def exposition_text(metrics: Iterable[Metric]) -> bytes:
    """The text of families already collected: `exposition` after `registry.collect()`.

    Families are written in the order given; runs of ordinary ones go through
    `generate_latest` (the instruments and alert gauges: a few hundred series at most).
    It only reads the collected families, so it may run in another thread.
    """
    parts: list[bytes] = []
    plain: list[Metric] = []
    for metric in metrics:
        if isinstance(metric, RenderedFamily):
            if plain:
                parts.append(generate_latest(_Families(plain)))
                plain = []
            parts.append(metric.text())
        else:
            plain.append(metric)
    if plain:
        parts.append(generate_latest(_Families(plain)))
    return b"".join(parts)


def _fleet_metrics(fleet: FleetView, omitted: int, now: float) -> Iterable[Metric]:
    integrations = GaugeMetricFamily(
        "healthd_integrations", HELP["healthd_integrations"], labels=["provider", "status"]
    )
    for (provider, status), count in fleet.counts.items():
        integrations.add_metric([provider, status.value], count)
    overdue = GaugeMetricFamily(
        "healthd_probe_overdue_seconds", HELP["healthd_probe_overdue_seconds"], labels=["provider"]
    )
    for provider, due in fleet.earliest_due.items():
        overdue.add_metric([provider], max(0.0, now - due))
    left_out = GaugeMetricFamily(
        "healthd_integration_detail_omitted",
        HELP["healthd_integration_detail_omitted"],
        value=omitted,
    )
    return (integrations, overdue, left_out)


class HealthCollector(Collector):
    """Yields the detailed integrations' series, the fleet aggregates and the alert gauges.

    `views` is the runner's `IntegrationSeries` (the daemon: kept up to date on each run),
    or a function returning views, gathered at every collect (tests and the README's
    reference table: a handful of integrations). `detail_limit` bounds the integrations
    with per-integration series (module docstring).
    """

    def __init__(
        self,
        views: IntegrationSeries | Callable[[], Sequence[View]],
        alerts: Callable[[], AlertView],
        now: Callable[[], float],
        detail_limit: int = DETAIL_LIMIT,
    ) -> None:
        self._views = views
        self._alerts = alerts
        self._now = now
        self._detail_limit = detail_limit

    def collect(self) -> Iterator[Metric]:
        views = self._views
        series = views if isinstance(views, IntegrationSeries) else IntegrationSeries.of(views())
        now = self._now()
        details, omitted = series.detail(self._detail_limit)
        yield from _Snapshot(details, now).families()
        yield from _fleet_metrics(series.fleet(), omitted, now)
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
        self.probe_errors = Counter(
            "healthd_probe_errors",
            HELP["healthd_probe_errors_total"],
            ["provider", "reason"],
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
        self.store_errors = Counter(
            "healthd_store_errors",
            HELP["healthd_store_errors_total"],
            ["operation"],
            registry=registry,
        )
        self.store_healthy = Gauge(
            "healthd_store_healthy", HELP["healthd_store_healthy"], registry=registry
        )
        self.store_healthy.set(1)
        # Every run's two children, looked up once: `labels()` validates and locks on each
        # call, about 10 µs apiece, a fiftieth of a probe's CPU (bench/RESULTS.md).
        self._durations: dict[str, Histogram] = {}
        self._runs: dict[tuple[str, Status], Counter] = {}

    def observe(self, integration: Integration, result: ProbeResult) -> None:
        provider = integration.provider
        duration = self._durations.get(provider)
        if duration is None:
            duration = self._durations[provider] = self.probe_duration.labels(provider)
        duration.observe(result.duration_seconds)
        runs = self._runs.get((provider, result.status))
        if runs is None:
            runs = self._runs[provider, result.status] = self.probes.labels(
                provider, result.status.value
            )
        runs.inc()
        for f in result.findings:
            if f.status is not Status.OK or f.provider_code is not None:
                # One per run, not the finding's message count: every run reads the same
                # window of messages again (the ledger counts each message once).
                self.findings.labels(
                    integration.provider, f.code, f.provider_code or "", f.category.value
                ).inc()

    def watch_store(self, healthy: Callable[[], bool]) -> None:
        """`healthd_store_healthy` reads `healthy` at each scrape."""
        self.store_healthy.set_function(lambda: 1.0 if healthy() else 0.0)

    def store_error(self, operation: str) -> None:
        self.store_errors.labels(operation).inc()

    def probe_error(self, integration: Integration, reason: str) -> None:
        self.probe_errors.labels(integration.provider, reason).inc()

    def alert_event(self, rule: str, action: str, outcome: str) -> None:
        self.alert_events.labels(rule, action, outcome).inc()


# -- delivery signals (issue 12): counted by the ledger and the callback receivers ----------

DELIVERY_HELP = {
    "healthd_delivery_messages_total": (
        "Messages counted by the delivery ledger, once each (at their first final status, or a"
        " recipient's reaction), by provider, status, provider code and category; codes"
        " outside the catalogue are 'other'."
    ),
    "healthd_delivery_error_rate": (
        "Share of the integration's messages counted in the last hour that failed with an"
        " account, sender configuration, provider or unknown error (recipient and content"
        " errors, which never change health, are left out); only integrations that need"
        " attention and counted messages in the hour."
    ),
    "healthd_callbacks_total": (
        "Provider delivery callbacks received, by provider and outcome (accepted, forged,"
        " unsigned, stale, unverifiable, malformed, busy; unknown_integration, with provider"
        " 'unknown' for an id that names no integration)."
    ),
}
DELIVERY_SERIES = {
    "healthd_delivery_messages_total": (
        "2 per provider, counted status, catalogue code (or other) and category seen; no"
        " integration label: at most about 2,000 whatever the fleet (bench/callbacks.py)"
    ),
    "healthd_delivery_error_rate": (
        "1 per detailed integration with messages in the hour: at most"
        " api.metrics_detail_limit (5,000) at 100,000 integrations, 0 per ok integration"
    ),
    "healthd_callbacks_total": (
        "2 per provider and outcome seen (at most 34: 7 outcomes of 2 receivers, and"
        " unknown_integration for 3 providers without one)"
    ),
}
OTHER_CODE = "other"


class DeliveryInstruments:
    """The ledger's and the callback receivers' counters.

    Labels are bounded: `provider_code` is a catalogue code (`known(provider, code)`) or
    "other", never a message id or a phone number, and no label names an integration.
    """

    def __init__(self, registry: CollectorRegistry, known: Callable[[str, str], bool]) -> None:
        self._known = known
        self.messages = Counter(
            "healthd_delivery_messages",
            DELIVERY_HELP["healthd_delivery_messages_total"],
            ["provider", "status", "provider_code", "category"],
            registry=registry,
        )
        self.callbacks = Counter(
            "healthd_callbacks",
            DELIVERY_HELP["healthd_callbacks_total"],
            ["provider", "outcome"],
            registry=registry,
        )

    def counted(self, provider: str, outcome: DeliveryOutcome) -> None:
        code = outcome.provider_code
        shown = "" if code is None else code if self._known(provider, code) else OTHER_CODE
        category = "" if outcome.category is None else outcome.category.value
        self.messages.labels(provider, outcome.status, shown, category).inc()

    def callback(self, provider: str, outcome: str) -> None:
        self.callbacks.labels(provider, outcome).inc()


class DeliveryRates(Collector):
    """`healthd_delivery_error_rate` of the integrations that get per-integration series.

    `detailed` lists them as `/metrics` does (`IntegrationSeries.detail` under the same
    limit), `rate` reads one's error share from the delivery ledger's hour (None: no
    messages), so an ok integration, however busy, adds no series.
    """

    def __init__(
        self,
        detailed: Callable[[], Iterable[Integration]],
        rate: Callable[[str], float | None],
    ) -> None:
        self._detailed = detailed
        self._rate = rate

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "healthd_delivery_error_rate",
            DELIVERY_HELP["healthd_delivery_error_rate"],
            labels=["integration", "provider", "tenant"],
        )
        for integration in self._detailed():
            rate = self._rate(integration.id)
            if rate is not None:
                family.add_metric([integration.id, integration.provider, integration.tenant], rate)
        yield family


class MetricsEndpoint:
    """Renders the registry at most once per `max_age` seconds, the loop turning meanwhile.

    The families are collected on the event loop, which writes the state they read: that
    is a consistent snapshot (the detailed integrations' kept text, the fleet's counts, the
    counters), a few ms at 100,000 integrations. The text is made from them in a worker
    thread (`exposition_text`), so probes keep running while it is formatted: with the
    rendering on the loop the loop got no turn for its 10-20 ms at 100,000, in a thread
    it got about 1,800 (bench/RESULTS.md, "Issue 17"). Scrapes within `max_age`, and
    scrapes arriving while one is rendered, share one rendering.
    """

    def __init__(self, registry: CollectorRegistry, max_age: float = 1.0) -> None:
        self._registry = registry
        self._max_age = max_age
        self._body = b""
        self._rendered_at = float("-inf")
        self._rendering = asyncio.Lock()

    async def render(self) -> bytes:
        async with self._rendering:
            if time.monotonic() - self._rendered_at >= self._max_age:
                metrics = list(self._registry.collect())
                self._body = await asyncio.to_thread(exposition_text, metrics)
                self._rendered_at = time.monotonic()
        return self._body

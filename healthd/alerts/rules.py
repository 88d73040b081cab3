"""Alert rules: which incidents should be open now, as a pure function of state.

Level-triggered reconciliation. `evaluate()` computes every condition that should have an
open incident at `now`, each under a stable dedup key, and compares that set with the
incidents the store holds open:

- a condition true now with no open incident is triggered (unless silenced or suppressed);
- an open incident whose condition no longer holds is resolved (never blocked);
- a condition that holds and is already open produces nothing.

So each incident triggers once and resolves once by construction, a restart is safe (what
is open lives in the store; the same inputs give an empty plan), incidents left open by a
crash or by a rule that was since disabled are resolved on the first evaluation, and a
maintenance window that ends while its condition still holds yields exactly one trigger on
the next evaluation.

Rules and dedup keys:

- `bridge_unreachable` (`healthd/bridge_unreachable/<id>`): an `imessage_bridge`
  integration whose `unreachable_since` is older than its `thresholds.page_after`.
- `integration_failing` (`healthd/integration_failing/<id>`): an integration that pages
  (`Integration.pages`) whose effective status is failing or unreachable. A bridge's
  unreachability belongs to `bridge_unreachable`; a bridge that answers but fails (iMessage
  signed out) pages here. Degraded never pages.
- `provider_outage` (`healthd/provider_outage/<provider>`): at least `min_share` and at
  least `min_count` of one provider's integrations fail with provider-category findings.
  While it holds, that provider's provider-category `integration_failing` triggers are
  suppressed: one page for the provider, not one per integration. Once open it also holds
  while a paging integration it suppresses is still failing that way, so the outage's
  resolve never releases the page it held back, and members on their way back
  (recovering, below) still count, so one good answer mid-outage neither resolves it
  nor, at the next 5xx, pages it again.
- `egress_down` (`healthd/egress_down`): integrations of at least `min_providers` providers
  fail with network errors and no integration succeeded in its latest run: the problem is
  healthd's own network. While it holds it suppresses `provider_outage`, `bridge_unreachable`
  and network failures of `integration_failing` and `tenant_failing`. Once open it holds
  while `min_providers` providers still fail with network errors or are recovering, so it
  resolves when the state machines call the network back, not at the first success.
- `tenant_failing` (`healthd/tenant/<id>`): a tenant-owned integration that is failing,
  unreachable or degraded, posted to the tenant's webhook (channel `webhook:<tenant>`) when
  one is configured. Tenant integrations never page on-call unless marked `page: true`
  (those page through `integration_failing` instead of going to the webhook).

Recovering. An integration the state machine still calls bad whose latest run was good
(it needs M good runs to recover), or a bridge with `unreachable_since` still set that
answered its latest probe, triggers nothing new: it keeps an incident already open open,
but a page held back (by egress_down, an outage, a silence) is not released for something
that already works again; were it released, it would resolve one probe later.

Flapping. Rules read only the state machine's debounced view: the effective `status`
(N failures to fail, M successes to recover) and `unreachable_since`. A flapping
integration therefore pages only once the state machine calls it failing and resolves only
once it calls it recovered. A flapping bridge pages when the `unreachable_since` the state
machine keeps is older than `page_after`: as long as the state machine does not clear that
timestamp (it clears it when the bridge counts as reachable again), short answers in the
middle of an outage neither restart the ten-minute timer nor resolve an open page; each
time it is cleared, the timer starts over, so a bridge that is back for good between
outages shorter than `page_after` never pages.

Events carry: a one-line summary (at most 1024 characters), source, component (provider),
group (tenant), class (rule), custom_details with the findings and their fixes, and a link
to the integration in the status API when `status_url` is set.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from healthd.alerts.settings import AlertingSettings, MaintenanceWindow
from healthd.model import (
    PLATFORM_TENANT,
    AlertEvent,
    Category,
    EventAction,
    Finding,
    Incident,
    Integration,
    IntegrationState,
    ProbeResult,
    Severity,
    Status,
)

BRIDGE_PROVIDER = "imessage_bridge"
TWILIO_PROVIDER = "twilio"
PAGERDUTY_CHANNEL = "pagerduty"
SUMMARY_LIMIT = 1024  # PagerDuty payload.summary maximum (PROVIDERS.md D1)
_CREDENTIAL_CATEGORIES = (Category.ACCOUNT, Category.SENDER_CONFIG)
_TOP_CODES = 5


def webhook_channel(tenant: str) -> str:
    return f"webhook:{tenant}"


@dataclass(frozen=True, kw_only=True, slots=True)
class AlertPlan:
    """What the store applies in one transaction (`Store.apply_alerts`)."""

    opened: tuple[Incident, ...] = ()
    resolved: tuple[tuple[str, datetime], ...] = ()
    events: tuple[tuple[str, AlertEvent], ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.opened or self.resolved or self.events)


@dataclass(frozen=True, kw_only=True, slots=True)
class _Condition:
    """One thing that should have an open incident now."""

    rule: str
    dedup_key: str
    channel: str
    summary: str
    severity: Severity
    integration: str | None = None
    provider: str | None = None
    tenant: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


def rule_inputs(state: IntegrationState, result: ProbeResult | None) -> tuple[object, ...]:
    """Everything the rules read of one integration (`_View` and the rules below).

    Two runs with equal inputs cannot change any rule's outcome, so the engine evaluates
    only after a run that changed them (or on its tick, for what time alone changes). A
    rule that starts reading another field of the state or the result must add it here.
    """
    return (
        state.status,
        state.since,
        state.consecutive_failures,
        state.unreachable_since,
        result.status if result else None,
        result.findings if result else None,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class _View:
    """One integration with its state and latest result, and what its findings say."""

    integration: Integration
    state: IntegrationState
    result: ProbeResult | None

    @property
    def bad_findings(self) -> tuple[Finding, ...]:
        findings = self.result.findings if self.result else ()
        return tuple(f for f in findings if f.status.is_bad)

    @property
    def failing(self) -> bool:
        return self.state.status.is_bad

    @property
    def provider_failure(self) -> bool:
        return self.failing and any(f.category is Category.PROVIDER for f in self.bad_findings)

    @property
    def network_failure(self) -> bool:
        return self.failing and any(f.network_error for f in self.bad_findings)

    @property
    def recovering(self) -> bool:
        """Still bad by the state machine, but the latest run was good: on its way back
        (M good runs to recover) or flapping. It keeps an open incident open and holds an
        open outage, but triggers nothing new: what failed is no longer what the probe
        sees, and the rule that held its page back may have just let go of it."""
        return self.failing and self.result is not None and not self.result.status.is_bad

    @property
    def answering(self) -> bool:
        """The latest run reached it (any answer), though `unreachable_since` may still be
        set until M such runs in a row."""
        return self.result is not None and self.result.status is not Status.UNREACHABLE

    @property
    def succeeded(self) -> bool:
        return self.result is not None and self.result.status in (Status.OK, Status.DEGRADED)


def evaluate(
    *,
    integrations: Mapping[str, Integration],
    states: Mapping[str, IntegrationState],
    results: Mapping[str, ProbeResult],
    open_incidents: Sequence[Incident],
    settings: AlertingSettings,
    now: datetime,
    silences: Sequence[MaintenanceWindow] = (),
) -> AlertPlan:
    """Reconcile the conditions true at `now` with `open_incidents`. Pure: no I/O, no clock.

    `silences` are windows set at run time (the admin API) on top of the configured
    `settings.maintenance`; both only hold back triggers.
    """
    views = [
        _View(
            integration=integration,
            state=states.get(iid) or IntegrationState(integration_id=iid),
            result=results.get(iid),
        )
        for iid, integration in sorted(integrations.items())
    ]
    rules = settings.rules
    is_open = {i.dedup_key for i in open_incidents if i.is_open}
    egress = _egress_down(views, settings, is_open) if rules.egress_down.enabled else None
    outages = _provider_outages(views, settings, is_open) if rules.provider_outage.enabled else []
    outage_providers = {c.provider for c in outages}

    conditions: list[tuple[_Condition, bool]] = []  # (condition, suppressed)
    if egress is not None:
        conditions.append((egress, False))
    conditions += [(c, egress is not None) for c in outages]
    if rules.bridge_unreachable.enabled:
        no_fallback = tenants_without_sms_fallback(integrations, states)
        for view in views:
            cond = _bridge_unreachable(view, now, no_fallback)
            if cond is not None:
                conditions.append((cond, egress is not None or view.answering))
    if rules.integration_failing.enabled:
        for view in views:
            cond = _integration_failing(view)
            if cond is not None:
                suppressed = (
                    view.recovering
                    or (egress is not None and view.network_failure)
                    or (cond.provider in outage_providers and view.provider_failure)
                )
                conditions.append((cond, suppressed))
    if rules.tenant_failing.enabled:
        for view in views:
            cond = _tenant_failing(view, settings)
            if cond is not None:
                suppressed = view.recovering or (egress is not None and view.network_failure)
                conditions.append((cond, suppressed))
    windows = (*settings.maintenance, *silences)
    return _reconcile(conditions, open_incidents, is_open, windows, settings, now)


# What an open incident remembers beyond its labels: the integrations it covers (probed
# first after a restart) and, for the bridge, the tenants without an SMS fallback (the
# status API lists them while the page is open).
_KEPT_DETAILS = ("integrations", "tenants_without_sms_fallback")


def _reconcile(
    conditions: Sequence[tuple[_Condition, bool]],
    open_incidents: Sequence[Incident],
    is_open: set[str],
    windows: Sequence[MaintenanceWindow],
    settings: AlertingSettings,
    now: datetime,
) -> AlertPlan:
    wanted = {c.dedup_key for c, _ in conditions}
    opened: list[Incident] = []
    events: list[tuple[str, AlertEvent]] = []
    for cond, suppressed in conditions:
        if cond.dedup_key in is_open or suppressed or _silenced(cond, windows, now):
            continue
        opened.append(
            Incident(
                dedup_key=cond.dedup_key,
                rule=cond.rule,
                summary=cond.summary,
                opened_at=now,
                details={
                    "channel": cond.channel,
                    "integration": cond.integration,
                    "provider": cond.provider,
                    "tenant": cond.tenant,
                    **{k: cond.details[k] for k in _KEPT_DETAILS if k in cond.details},
                },
            )
        )
        if _deliverable(cond.channel, settings):
            events.append((cond.channel, _trigger_event(cond, settings, now)))
    resolved: list[tuple[str, datetime]] = []
    for incident in sorted(open_incidents, key=lambda i: i.dedup_key):
        if not incident.is_open or incident.dedup_key in wanted:
            continue
        resolved.append((incident.dedup_key, now))
        channel = str(incident.details.get("channel") or PAGERDUTY_CHANNEL)
        if _deliverable(channel, settings):
            events.append((channel, _resolve_event(incident, settings, now)))
    return AlertPlan(opened=tuple(opened), resolved=tuple(resolved), events=tuple(events))


def _silenced(cond: _Condition, windows: Sequence[MaintenanceWindow], now: datetime) -> bool:
    return any(
        w.silences(
            cond.rule, now, integration=cond.integration, tenant=cond.tenant, provider=cond.provider
        )
        for w in windows
    )


def _deliverable(channel: str, settings: AlertingSettings) -> bool:
    """Without PagerDuty configured, incidents are recorded but no page is queued."""
    if channel == PAGERDUTY_CHANNEL:
        return settings.pagerduty is not None
    tenant = channel.removeprefix("webhook:")
    return channel != tenant and tenant in settings.webhooks


# --- the rules ---------------------------------------------------------------------------


def _bridge_unreachable(view: _View, now: datetime, no_fallback: list[str]) -> _Condition | None:
    integration, since = view.integration, view.state.unreachable_since
    if integration.provider != BRIDGE_PROVIDER or since is None:
        return None
    down_for = now - since
    if down_for <= integration.thresholds.page_after:
        return None
    # The id, as on-call sees it elsewhere: "iMessage bridge unreachable for 12m (bridge-dc1)".
    return _Condition(
        rule="bridge_unreachable",
        dedup_key=f"healthd/bridge_unreachable/{integration.id}",
        channel=PAGERDUTY_CHANNEL,
        summary=f"iMessage bridge unreachable for {format_duration(down_for)} ({integration.id})",
        severity=Severity.CRITICAL,
        integration=integration.id,
        provider=integration.provider,
        tenant=integration.tenant,
        details={
            "integration": integration.id,
            "unreachable_since": since.isoformat(),
            "unreachable_seconds": int(down_for.total_seconds()),
            "findings": _findings(view),
            "tenants_without_sms_fallback": no_fallback,
        },
    )


def tenants_without_sms_fallback(
    integrations: Mapping[str, Integration], states: Mapping[str, IntegrationState]
) -> list[str]:
    """Tenants with no connected Twilio integration (configured and not failing).

    Seed 000: while the bridge is down, these tenants' iMessages sit in the queue instead
    of falling back to SMS. The bridge page lists them; the status API can too.
    """
    tenants = {i.tenant for i in integrations.values() if i.tenant != PLATFORM_TENANT}
    covered = {
        i.tenant
        for iid, i in integrations.items()
        if i.provider == TWILIO_PROVIDER and not (iid in states and states[iid].status.is_bad)
    }
    return sorted(tenants - covered)


def _integration_failing(view: _View) -> _Condition | None:
    integration, status = view.integration, view.state.status
    if not integration.pages or not status.is_bad:
        return None
    if integration.provider == BRIDGE_PROVIDER and status is Status.UNREACHABLE:
        return None  # bridge_unreachable's, with its own page_after
    bad = view.bad_findings
    credential = any(f.category in _CREDENTIAL_CATEGORIES for f in bad)
    name = integration.name or integration.id
    reason = bad[0].summary if bad else status.value
    return _Condition(
        rule="integration_failing",
        dedup_key=f"healthd/integration_failing/{integration.id}",
        channel=PAGERDUTY_CHANNEL,
        summary=f"{integration.provider} integration {name} ({integration.tenant}) "
        f"is {status.value}: {reason}",
        severity=Severity.CRITICAL if credential else Severity.ERROR,
        integration=integration.id,
        provider=integration.provider,
        tenant=integration.tenant,
        details=_integration_details(view),
    )


def _tenant_failing(view: _View, settings: AlertingSettings) -> _Condition | None:
    integration, status = view.integration, view.state.status
    if integration.tenant not in settings.webhooks or integration.pages:
        return None
    if not (status.is_bad or status is Status.DEGRADED):
        return None
    findings = view.bad_findings or tuple(
        f for f in (view.result.findings if view.result else ()) if f.status is Status.DEGRADED
    )
    name = integration.name or integration.id
    reason = findings[0].summary if findings else status.value
    return _Condition(
        rule="tenant_failing",
        dedup_key=f"healthd/tenant/{integration.id}",
        channel=webhook_channel(integration.tenant),
        summary=f"{integration.provider} integration {name} is {status.value}: {reason}",
        severity=Severity.WARNING if status is Status.DEGRADED else Severity.ERROR,
        integration=integration.id,
        provider=integration.provider,
        tenant=integration.tenant,
        details=_integration_details(view),
    )


def _provider_outages(
    views: Sequence[_View], settings: AlertingSettings, is_open: set[str]
) -> list[_Condition]:
    """Once open, an outage also holds while it still holds back a page (a paging
    integration of the provider failing with provider errors): as a provider recovers, its
    integrations come back one by one, and resolving the outage while the platform's own
    integration is still failing would fire the very page it was holding back."""
    cfg = settings.rules.provider_outage
    by_provider: dict[str, list[_View]] = defaultdict(list)
    for view in views:
        by_provider[view.integration.provider].append(view)
    out = []
    for provider, members in sorted(by_provider.items()):
        affected = [v for v in members if v.provider_failure]
        key = f"healthd/provider_outage/{provider}"
        # Once open, members still on their way back count: one good answer in the middle
        # of an outage must not resolve the page and trigger it again on the next 5xx.
        held = (
            [v for v in members if v.provider_failure or v.recovering]
            if key in is_open
            else affected
        )
        above = len(held) >= cfg.min_count and len(held) >= cfg.min_share * len(members)
        holding_back = key in is_open and any(v.integration.pages for v in affected)
        if not (above or holding_back):
            continue
        codes = Counter(
            f.code for v in affected for f in v.bad_findings if f.category is Category.PROVIDER
        )
        top = [code for code, _ in codes.most_common(_TOP_CODES)]
        out.append(
            _Condition(
                rule="provider_outage",
                dedup_key=key,
                channel=PAGERDUTY_CHANNEL,
                summary=f"{provider} outage: {len(affected)} of {len(members)} integrations "
                f"failing with provider errors ({', '.join(top)})",
                severity=Severity.CRITICAL,
                provider=provider,
                details={
                    "affected": len(affected),
                    "total": len(members),
                    "share": round(len(affected) / len(members), 3),
                    "top_codes": dict(codes.most_common(_TOP_CODES)),
                    "tenants": sorted({v.integration.tenant for v in affected}),
                    "integrations": [v.integration.id for v in affected],
                },
            )
        )
    return out


def _egress_down(
    views: Sequence[_View], settings: AlertingSettings, is_open: set[str]
) -> _Condition | None:
    """Triggers only when nothing succeeded; once open, holds while integrations of
    `min_providers` providers still fail with network errors. When the network comes back,
    the first success must not resolve it and release a page for every integration whose
    state machine has not yet seen its M good probes."""
    is_down = "healthd/egress_down" in is_open
    if not is_down and any(v.succeeded for v in views):
        return None
    failing = [v for v in views if v.network_failure or (is_down and v.recovering)]
    providers = sorted({v.integration.provider for v in failing})
    if len(providers) < settings.rules.egress_down.min_providers:
        return None
    codes = Counter(f.code for v in failing for f in v.bad_findings if f.network_error)
    return _Condition(
        rule="egress_down",
        dedup_key="healthd/egress_down",
        channel=PAGERDUTY_CHANNEL,
        summary="healthd cannot reach any provider: its own egress or the datacenter's network",
        severity=Severity.CRITICAL,
        details={
            "providers": providers,
            "integrations_failing": len(failing),
            "top_codes": dict(codes.most_common(_TOP_CODES)),
        },
    )


# --- events ------------------------------------------------------------------------------


def _findings(view: _View) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in f.to_dict().items() if v not in (None, [], "")} for f in view.bad_findings
    ]


def _integration_details(view: _View) -> dict[str, Any]:
    return {
        "integration": view.integration.id,
        "status": view.state.status.value,
        "since": view.state.since.isoformat() if view.state.since else None,
        "consecutive_failures": view.state.consecutive_failures,
        "findings": _findings(view),
    }


def _links(integration: str | None, settings: AlertingSettings) -> tuple[tuple[str, str], ...]:
    if integration is None or settings.status_url is None:
        return ()
    href = f"{settings.status_url}/api/v1/integrations/{integration}"
    return ((href, f"{integration} in healthd's status API"),)


def _trigger_event(cond: _Condition, settings: AlertingSettings, now: datetime) -> AlertEvent:
    return AlertEvent(
        rule=cond.rule,
        action=EventAction.TRIGGER,
        dedup_key=cond.dedup_key,
        summary=one_line(cond.summary),
        source=settings.source,
        severity=cond.severity,
        component=cond.provider,
        group=cond.tenant,
        class_=cond.rule,
        custom_details=dict(cond.details),
        links=_links(cond.integration, settings),
        timestamp=now,
    )


def _resolve_event(incident: Incident, settings: AlertingSettings, now: datetime) -> AlertEvent:
    integration = incident.details.get("integration")
    provider = incident.details.get("provider")
    tenant = incident.details.get("tenant")
    return AlertEvent(
        rule=incident.rule,
        action=EventAction.RESOLVE,
        dedup_key=incident.dedup_key,
        summary=one_line(f"Resolved: {incident.summary}"),
        source=settings.source,
        severity=Severity.INFO,
        component=str(provider) if provider else None,
        group=str(tenant) if tenant else None,
        class_=incident.rule,
        custom_details={"opened_at": incident.opened_at.isoformat()},
        links=_links(str(integration) if integration else None, settings),
        timestamp=now,
    )


def one_line(text: str, limit: int = SUMMARY_LIMIT) -> str:
    """Collapse whitespace to one line and cut to `limit` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def format_duration(delta: timedelta) -> str:
    """`12m`, `1h5m`, `45s`: how long, the way a person says it in a page."""
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    hours, rest = divmod(seconds // 60, 60)
    days, hours = divmod(hours, 24)
    parts = [(days, "d"), (hours, "h"), (rest, "m")]
    return "".join(f"{n}{unit}" for n, unit in parts if n) or "0m"

"""Value objects that flow through healthd, from a configured integration to an alert.

Everything here is frozen, keyword-only and free of I/O, so that the state machine and
the alert rules can be pure functions over these types and tests can build them by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple


class Status(StrEnum):
    """Health of one probe run or one integration, from best to worst."""

    OK = "ok"
    DEGRADED = "degraded"
    FAILING = "failing"
    UNREACHABLE = "unreachable"
    UNKNOWN = "unknown"

    @property
    def is_bad(self) -> bool:
        """Failing and unreachable count towards the failure threshold; degraded does not."""
        return self in (Status.FAILING, Status.UNREACHABLE)

    @staticmethod
    def worst(statuses: list[Status], default: Status | None = None) -> Status:
        """The worst status of several findings (a result is as bad as its worst check)."""
        if not statuses:
            return default if default is not None else Status.OK
        return max(statuses, key=lambda s: _RANK[s])


# UNKNOWN ranks below OK: a check that could not tell (a status page that did not load)
# must not hide that every real check passed.
_RANK = {
    Status.UNKNOWN: 0,
    Status.OK: 1,
    Status.DEGRADED: 2,
    Status.FAILING: 3,
    Status.UNREACHABLE: 4,
}


class Category(StrEnum):
    """Whose problem a provider error is. Only some categories count against health.

    recipient and content are the customer's audience or wording: shown and counted, never
    paged. sender_config and account are the account owner's setup. provider is the
    provider's (or the network's) side and is what feeds the provider_outage rule.
    """

    RECIPIENT = "recipient"
    CONTENT = "content"
    SENDER_CONFIG = "sender_config"
    ACCOUNT = "account"
    PROVIDER = "provider"
    UNKNOWN = "unknown"

    @property
    def counts_against_health(self) -> bool:
        return self in (Category.SENDER_CONFIG, Category.ACCOUNT, Category.PROVIDER)


@dataclass(frozen=True, kw_only=True, slots=True)
class Finding:
    """One check's verdict, with what a person should do about it.

    `code` is healthd's stable code (`bridge.unreachable`); `provider_code` is the
    provider's own (`20003`, `invalid_grant`) where there is one. `examples` holds a few
    provider object ids (message SIDs) that a provider's support asks for; never message
    bodies or phone numbers.
    """

    check: str
    status: Status
    code: str
    summary: str
    remediation: str = ""
    category: Category = Category.UNKNOWN
    provider_code: str | None = None
    count: int | None = None
    examples: tuple[str, ...] = ()
    network_error: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "status": self.status.value,
            "code": self.code,
            "provider_code": self.provider_code,
            "category": self.category.value,
            "summary": self.summary,
            "remediation": self.remediation,
            "count": self.count,
            "examples": list(self.examples),
            "network_error": self.network_error,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        return cls(
            check=data["check"],
            status=Status(data["status"]),
            code=data["code"],
            provider_code=data.get("provider_code"),
            category=Category(data.get("category", "unknown")),
            summary=data["summary"],
            remediation=data.get("remediation", ""),
            count=data.get("count"),
            examples=tuple(data.get("examples", ())),
            network_error=bool(data.get("network_error", False)),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class ProbeResult:
    """What one probe run saw. The status is derived from the findings unless given."""

    integration_id: str
    status: Status
    started_at: datetime
    duration_seconds: float
    findings: tuple[Finding, ...] = ()

    @classmethod
    def from_findings(
        cls,
        *,
        integration_id: str,
        started_at: datetime,
        duration_seconds: float,
        findings: list[Finding] | tuple[Finding, ...],
    ) -> ProbeResult:
        return cls(
            integration_id=integration_id,
            status=Status.worst([f.status for f in findings]),
            started_at=started_at,
            duration_seconds=duration_seconds,
            findings=tuple(findings),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "integration_id": self.integration_id,
            "status": self.status.value,
            "started_at": self.started_at.isoformat(),
            "duration_seconds": self.duration_seconds,
            "findings": [f.to_dict() for f in self.findings],
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], findings: tuple[Finding, ...] | None = None
    ) -> ProbeResult:
        """`findings`, when given, are the result's already decoded (the store's rows)."""
        if findings is None:
            findings = tuple(Finding.from_dict(f) for f in data.get("findings", ()))
        return cls(
            integration_id=data["integration_id"],
            status=Status(data["status"]),
            started_at=datetime.fromisoformat(data["started_at"]),
            duration_seconds=float(data["duration_seconds"]),
            findings=findings,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Thresholds:
    """Hysteresis and timing for one integration's state machine."""

    failure_threshold: int = 3
    success_threshold: int = 2
    page_after: timedelta = timedelta(minutes=10)


@dataclass(frozen=True, kw_only=True, slots=True)
class ProviderTraits:
    """What the core needs to know of a provider, declared once on its probe class.

    The core never tests a provider's name: the alert rules, the metrics and the API read
    these instead, so a new probe changes its own module and nothing in `healthd/`.

    - `display_name` is how people call it ("iMessage bridge"), in findings and pages;
    - `code_prefix` starts its finding codes (`bridge.unreachable`);
    - `tracks_unreachable`: an unreachable run keeps `unreachable_since` and pages through
      `bridge_unreachable` after `page_after`, and `/metrics` exports
      `healthd_bridge_unreachable_seconds` for it;
    - `sms_fallback`: a connected, healthy integration of it gives its tenant an SMS
      fallback while the bridge is down;
    - `shared_impact`: a platform integration of it is a shared dependency of every
      workspace, shown on each workspace's page, and this is what it means for them while
      it is not ok (`shared_impact_without_fallback` for a workspace with no SMS fallback).
    """

    display_name: str
    code_prefix: str
    tracks_unreachable: bool = False
    sms_fallback: bool = False
    shared_impact: str = ""
    shared_impact_without_fallback: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class Integration:
    """One connected account, as configured. Credentials hold resolved secrets.

    `credentials` values are `healthd.secrets.Secret` objects whose repr is masked; a probe
    calls `.reveal()` only at the point where it builds a request.
    """

    id: str
    provider: str
    tenant: str
    base_url: str
    page: bool
    interval: timedelta
    timeout: timedelta
    thresholds: Thresholds
    credentials: Mapping[str, Any] = field(default_factory=dict)
    options: Any = None
    name: str = ""
    traits: ProviderTraits | None = None
    # The key the provider signs its delivery callbacks with, where it uses a public key
    # (SendGrid's signed Event Webhook: base64 DER, not a secret). Twilio signs with the
    # auth token instead.
    callback_public_key: str | None = None

    @property
    def display_name(self) -> str:
        """The provider as people call it (its traits), or its config name without them."""
        return self.traits.display_name if self.traits else self.provider

    @property
    def tracks_unreachable(self) -> bool:
        return self.traits is not None and self.traits.tracks_unreachable

    @property
    def sms_fallback(self) -> bool:
        return self.traits is not None and self.traits.sms_fallback

    @property
    def pages(self) -> bool:
        """Platform-owned integrations page on-call; a tenant's only when marked `page: true`."""
        return self.page or self.tenant == PLATFORM_TENANT


PLATFORM_TENANT = "platform"


@dataclass(frozen=True, kw_only=True, slots=True)
class IntegrationState:
    """Per-integration memory of the state machine; lives in the store across restarts.

    `status` is the effective (debounced) status that the API and alerts use; the raw
    status of the latest run is `last_result_status`. `reachable_streak` counts runs in a
    row that got any answer; it decides when `unreachable_since` is cleared.
    `disagreeing_runs` counts runs in a row that would move a good status between ok and
    degraded; it debounces degraded (`healthd.state`).
    """

    integration_id: str
    status: Status = Status.UNKNOWN
    since: datetime | None = None
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    last_checked: datetime | None = None
    last_success: datetime | None = None
    unreachable_since: datetime | None = None
    last_result_status: Status = Status.UNKNOWN
    reachable_streak: int = 0
    disagreeing_runs: int = 0


class TransitionKind(StrEnum):
    FAILED = "failed"
    RECOVERED = "recovered"
    DEGRADED = "degraded"
    BECAME_UNREACHABLE = "became_unreachable"
    BECAME_REACHABLE = "became_reachable"


@dataclass(frozen=True, kw_only=True, slots=True)
class Transition:
    """A change of an integration's effective status, in the past tense."""

    integration_id: str
    kind: TransitionKind
    at: datetime
    from_status: Status
    to_status: Status


@dataclass(frozen=True, kw_only=True, slots=True)
class RunChange:
    """One finished run: the integration's state and latest result before and after it.

    The runner hands one to its listener after each run, so the alert engine can tell a
    run that changed something a rule reads from the thousands a sweep makes that change
    nothing; and one for each integration whose runs it read back from the store
    (`Runner.adopt`: another replica's runs), where `result` is None for one with no
    result stored yet. It lives here, below both, so that alerts never import the runner.
    """

    before: IntegrationState
    before_result: ProbeResult | None
    after: IntegrationState
    result: ProbeResult | None


class EventAction(StrEnum):
    TRIGGER = "trigger"
    RESOLVE = "resolve"


class Severity(StrEnum):
    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, kw_only=True, slots=True)
class AlertEvent:
    """One PagerDuty-shaped event for the outbox. `dedup_key` names the incident."""

    rule: str
    action: EventAction
    dedup_key: str
    summary: str
    source: str
    severity: Severity = Severity.CRITICAL
    component: str | None = None
    group: str | None = None
    class_: str | None = None
    custom_details: Mapping[str, Any] = field(default_factory=dict)
    links: tuple[tuple[str, str], ...] = ()
    timestamp: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "action": self.action.value,
            "dedup_key": self.dedup_key,
            "summary": self.summary,
            "source": self.source,
            "severity": self.severity.value,
            "component": self.component,
            "group": self.group,
            "class": self.class_,
            "custom_details": dict(self.custom_details),
            "links": [list(link) for link in self.links],
            "timestamp": self.timestamp.isoformat() if self.timestamp else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertEvent:
        ts = data.get("timestamp")
        return cls(
            rule=data["rule"],
            action=EventAction(data["action"]),
            dedup_key=data["dedup_key"],
            summary=data["summary"],
            source=data["source"],
            severity=Severity(data.get("severity", "critical")),
            component=data.get("component"),
            group=data.get("group"),
            class_=data.get("class"),
            custom_details=data.get("custom_details") or {},
            links=tuple((str(h), str(t)) for h, t in data.get("links", ())),
            timestamp=datetime.fromisoformat(ts) if ts else None,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Incident:
    """An open (or recently resolved) page, as the store remembers it."""

    dedup_key: str
    rule: str
    summary: str
    opened_at: datetime
    resolved_at: datetime | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    @property
    def tenants(self) -> set[str]:
        """The tenants it concerns, from what the alert rules store in its details.

        Rules store the single owning tenant as `tenant` (None for provider-wide and egress
        incidents); a `tenants` list is honoured too. An incident with none is admin-only.
        """
        found = {str(t) for t in self.details.get("tenants") or () if t}
        if self.details.get("tenant"):
            found.add(str(self.details["tenant"]))
        return found


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    REJECTED = "rejected"


@dataclass(frozen=True, kw_only=True, slots=True)
class OutboxItem:
    """One queued notification. `channel` picks the notifier (pagerduty, webhook:<tenant>)."""

    id: int
    channel: str
    event: AlertEvent
    status: OutboxStatus
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    last_error: str | None = None


class Bucket(NamedTuple):
    """One integration's probe runs over `span_seconds` from `start`, counted by outcome.

    The history the store keeps instead of every run (`healthd.store._history`): ok,
    degraded and bad (failing or unreachable) runs, and their summed and longest latency.
    A run that proves nothing (status unknown: a probe that crashed) is not counted.

    Immutable like every value here, but a NamedTuple rather than a frozen dataclass: the
    status page reads about a hundred thousand of them at once (90 days of 1,000
    integrations), and a frozen dataclass's `__init__` costs about 8 µs to a tuple's 0.5.
    Build it with keywords all the same.
    """

    start: datetime
    span_seconds: int
    ok: int = 0
    degraded: int = 0
    bad: int = 0
    latency_total: float = 0.0
    latency_max: float = 0.0

    @property
    def runs(self) -> int:
        return self.ok + self.degraded + self.bad

    @property
    def up(self) -> int:
        """Runs in which the integration worked: degraded is slow or partial, not down."""
        return self.ok + self.degraded

    @property
    def uptime(self) -> float | None:
        """The share of its runs that worked; None when nothing ran in it."""
        runs = self.runs
        return self.up / runs if runs else None

    @property
    def latency_mean(self) -> float | None:
        return self.latency_total / self.runs if self.runs else None


@dataclass(frozen=True, kw_only=True, slots=True)
class IncidentQuery:
    """Which incident occurrences `Store.incident_history` returns, newest first.

    `before` is the cursor: only occurrences with a smaller id (the last one of the page
    before). `tenant` matches the tenant the rules stored in the details (`tenant`, or one
    of `tenants`); `integration` and `provider` the stored `integration` and `provider`.
    None matches anything.
    """

    limit: int = 50
    before: int | None = None
    integration: str | None = None
    provider: str | None = None
    tenant: str | None = None
    rule: str | None = None
    open: bool | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class IncidentEventRecord:
    """One event queued for an occurrence (its trigger, its resolve) and when the channel
    accepted it (None while it waits or was rejected)."""

    action: EventAction
    channel: str
    queued_at: datetime
    sent_at: datetime | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class IncidentRecord:
    """One stored occurrence of an incident, with its id (the history's cursor) and its
    events in the order they were queued."""

    id: int
    incident: Incident
    events: tuple[IncidentEventRecord, ...] = ()


class DeliveryStage(StrEnum):
    """Where a message's status stands, which decides whether the ledger counts it.

    A message is counted once, at its first FINAL status (delivered, undelivered, failed,
    bounce, dropped): a second final status of the same message is kept as its latest
    outcome but not counted again. A REACTION (a spam report, an unsubscribe) is the
    recipient's answer to a delivered message: counted once each. PENDING statuses
    (queued, sent, deferred) are kept and never counted: a late receipt is what counts.
    """

    PENDING = "pending"
    FINAL = "final"
    REACTION = "reaction"


@dataclass(frozen=True, kw_only=True, slots=True)
class DeliveryOutcome:
    """One status of one message, from a provider callback or from polling.

    `message_id` is the provider's id (a Twilio SM… SID, a SendGrid sg_message_id), never a
    phone number or an address; `(integration_id, message_id, status)` is what a replay
    repeats, and what the ledger deduplicates by. `at` is when healthd learnt it (its own
    clock: the windows age by it).
    """

    integration_id: str
    message_id: str
    status: str
    stage: DeliveryStage
    category: Category | None  # None: no error (delivered, sent)
    at: datetime
    provider_code: str | None = None
    source: str = "callback"


@dataclass(frozen=True, kw_only=True, slots=True)
class RegistryRecord:
    """One integration registered through the API, as the store keeps it.

    `spec` is the JSON of the request's validated body with every credential sealed
    (`healthd.vault`): the store never holds a credential in clear. `revision` counts the
    changes of this id (the API's ETag).
    """

    id: str
    tenant: str
    revision: int
    spec: str
    updated_at: datetime

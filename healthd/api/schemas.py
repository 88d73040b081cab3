"""The status API's request and response bodies, as pydantic models.

Handlers build every JSON body they answer through one of these models (`views.py` maps
healthd's own objects onto them) and validate the one body they accept (`SilenceRequest`),
and `openapi.py` generates the document's schemas from the same classes: what a handler
returns is the described shape by construction, not by a second, hand-kept copy.

Response models have no defaults and every field is always sent, so the generated schemas
mark every field required. Times are RFC 3339 with their offset (`+00:00`), as
`datetime.isoformat()` writes them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

from healthd.alerts.settings import MaintenanceWindow, RuleName
from healthd.config import IntegrationRequest
from healthd.durations import Duration
from healthd.model import Category, Status, TransitionKind

Timestamp = Annotated[
    datetime,
    PlainSerializer(datetime.isoformat, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
Count = Annotated[int, Field(ge=0)]
# A duration as healthd reads one (`healthd.durations`): `30m`, `1h30m`, `500ms`, or seconds.
# Described as such, not as pydantic's ISO 8601 `format: duration`, which healthd refuses.
# The number's bound is the longest silence; a string's is checked on arrival.
LONGEST_SILENCE = timedelta(days=30)
_LONGEST_SECONDS = LONGEST_SILENCE.total_seconds()
DURATION_PATTERN = r"^\s*(\d+(\.\d+)?|(\d+(\.\d+)?(ms|s|m|h|d))+)\s*$"
RequestDuration = Annotated[
    Duration,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": DURATION_PATTERN, "examples": ["30m", "1h30m"]},
                {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "maximum": _LONGEST_SECONDS,
                },
            ],
            "description": "how long from starts_at: `30m`, `2h`, `1h30m`, or seconds",
        }
    ),
]


class Body(BaseModel):
    """A response body: built by the listener from healthd's own values, never from input."""

    model_config = ConfigDict(frozen=True, from_attributes=True)


class Finding(Body):
    check: str = Field(examples=["auth", "reachability"])
    status: Status
    code: str = Field(examples=["twilio.auth_invalid"])
    provider_code: str | None = Field(examples=["20003"])
    category: Category
    summary: str
    remediation: str = Field(description="what a person should do")
    count: int | None
    examples: list[str] = Field(description="provider object ids (message SIDs), never content")
    network_error: bool


class Transition(Body):
    """A change of the integration's debounced status."""

    kind: TransitionKind
    at: Timestamp
    from_status: Status
    to_status: Status


class Integration(Body):
    id: str
    name: str
    provider: str
    provider_name: str = Field(
        description="the provider as people call it", examples=["iMessage bridge"]
    )
    tenant: str
    status: Status = Field(description="debounced: failing after N bad runs, ok after M good ones")
    since: Timestamp | None = Field(description="when the status last changed")
    last_checked: Timestamp | None
    last_success: Timestamp | None
    unreachable_since: Timestamp | None
    last_result_status: Status | None = Field(
        description="the latest run's own status, before debouncing"
    )
    consecutive_failures: Count
    problems: list[Finding] = Field(
        description="the findings that are not ok: what is failing and the fix"
    )
    findings: list[Finding]


class IntegrationDetail(Integration):
    transitions: list[Transition] = Field(
        description="the most recent changes of status, newest first (at most 20)"
    )


class LiveIntegration(Integration):
    fresh: bool = Field(
        description="the probe finished within the bound; false: this is the previous result"
    )


class SharedDependency(Body):
    """Shared infrastructure a workspace's messages go through (the iMessage bridge), as a
    workspace sees it: no id, host, address, findings or other workspaces."""

    name: str = Field(examples=["iMessage bridge"])
    provider: str
    status: Status
    since: Timestamp | None
    unreachable_since: Timestamp | None
    impact: str = Field(description="what it means for this workspace; empty while ok")


class IntegrationList(Body):
    integrations: list[Integration]
    count: Count
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: last")
    shared_dependencies: list[SharedDependency] = Field(
        description="for a workspace token: the platform's integrations its messages use"
    )


class LiveCheck(Body):
    integrations: list[LiveIntegration]
    count: Count


class Principal(Body):
    name: str = Field(description="the token's name in the config")
    role: Literal["admin", "tenant"]
    tenant: str | None = Field(description="null for an admin token")


class CatalogEntry(Body):
    provider: str
    code: str
    title: str
    meaning: str
    fix: str
    category: Category
    retryable: bool
    counts_against_health: bool


class Incident(Body):
    dedup_key: str
    rule: str
    summary: str
    opened_at: Timestamp
    resolved_at: Timestamp | None
    open: bool
    integration: str | None
    provider: str | None
    tenant: str | None
    tenants_without_sms_fallback: list[str] = Field(
        description="bridge incidents: tenants whose iMessages cannot fall back to SMS "
        "(no working Twilio integration)"
    )


class IncidentList(Body):
    incidents: list[Incident]
    count: Count
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: last")


class Healthy(Body):
    status: Literal["ok"]


class Ready(Body):
    status: Literal["ready"]


class Problem(Body):
    """RFC 9457 problem details: the body of every error answer."""

    type: str
    title: str
    status: int
    detail: str


class Silence(MaintenanceWindow):
    """A silence in force: the maintenance window it applies, and who set it when."""

    model_config = ConfigDict(extra="ignore", json_schema_serialization_defaults_required=True)

    created_by: str
    created_at: Timestamp


class SilenceList(Body):
    silences: list[Silence]
    count: Count
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: last")


class SilenceRequest(BaseModel):
    """The body of `POST /api/v1/silences`, validated as it arrives (see `silences.py`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    name: str = Field(min_length=1, max_length=200)
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    duration: RequestDuration | None = None
    rules: Literal["all"] | tuple[RuleName, ...] = "all"
    integrations: tuple[str, ...] = ()
    tenants: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()


# -- history (issue 15): `healthd.api.history` -------------------------------------------

Share = Annotated[float, Field(ge=0, le=1)]
WindowName = Literal["24h", "7d", "30d", "90d"]


class HistoryBucket(Body):
    """One cell of a window: the runs counted in it, by outcome."""

    start: Timestamp
    span_seconds: Count
    ok: Count
    degraded: Count
    bad: Count = Field(description="failing or unreachable runs")
    runs: Count = Field(description="ok + degraded + bad; a run that proved nothing is left out")
    uptime: Share | None = Field(description="(ok + degraded) / runs; null: no run in this cell")
    latency_mean_seconds: float | None
    latency_max_seconds: float | None


class IntegrationHistory(Body):
    id: str
    window: WindowName
    start: Timestamp = Field(description="the start of the first cell")
    uptime: Share | None = Field(description="over the whole window; null: nothing was counted")
    buckets: list[HistoryBucket] = Field(
        description="every cell of the window, oldest first: 24 or 168 hours, 30 or 90 UTC days"
    )
    transitions: list[Transition] = Field(
        description="changes of status in the window, newest first"
    )


class IncidentEvent(Body):
    """One event queued for an occurrence: its trigger, its resolve."""

    action: Literal["trigger", "resolve"]
    channel: str = Field(examples=["pagerduty", "webhook:acme"])
    queued_at: Timestamp
    sent_at: Timestamp | None = Field(description="when the channel accepted it; null: not yet")


class IncidentOccurrence(Incident):
    id: int = Field(description="this occurrence's number; a reopened incident is a new one")
    duration_seconds: float = Field(description="how long it lasted, or has so far while open")
    events: list[IncidentEvent] = Field(description="the events queued for it, in order")


class IncidentHistory(Body):
    incidents: list[IncidentOccurrence]
    count: Count
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: no more")


class IntegrationSummary(Body):
    """What the status page shows of one integration's history."""

    id: str
    tenant: str
    uptime_24h: Share | None
    uptime_7d: Share | None
    uptime_30d: Share | None
    days_start: Timestamp = Field(description="the first day of `days` (UTC midnight)")
    days: list[Share | None] = Field(
        description="the last 90 UTC days' uptime, oldest first (today last); null: no run"
    )
    latency: list[float | None] = Field(
        description="mean latency in seconds of each of the last 24 hours, oldest first"
    )
    incidents: list[IncidentOccurrence] = Field(description="the latest few, newest first")


class HistorySummary(Body):
    integrations: list[IntegrationSummary]
    count: Count
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null: no more (always null with `ids`)"
    )


class DeliveryExample(Body):
    """One message, as a provider's support asks for it: its id, when, status and code."""

    message_id: str
    at: AwareDatetime
    status: str
    provider_code: str | None


class DeliveryExamples(Body):
    """`GET /api/v1/integrations/{id}/examples`: the support bundle for one code."""

    integration: str
    provider_code: str
    window: str = Field(description="how far back the examples were looked for")
    fix: str | None = Field(description="the catalogue's fix for the code, if it knows it")
    examples: list[DeliveryExample]
    count: int


# What the document describes, by direction: answers as serialised, requests as validated.
class Credential(Body):
    """A write-only credential: whether it is set, and a short keyed fingerprint."""

    set: bool
    fingerprint: str


class Registration(Body):
    """One registered integration: its body as stored, credentials as set/fingerprint."""

    id: str
    tenant: str
    revision: int
    updated_at: Timestamp
    etag: str
    spec: dict[str, Any] = Field(description="the body as registered, without credentials")
    credentials: dict[str, Credential]


class TenantSet(Body):
    """A tenant's registered set and, after a PUT, what the call changed."""

    tenant: str
    etag: str
    integrations: list[Registration]
    created: list[str]
    changed: list[str]
    removed: list[str]
    unchanged: list[str]


class TenantSetRequest(BaseModel):
    """`PUT /api/v1/tenants/{tenant}/integrations`: the tenant's whole set, each with its id."""

    model_config = ConfigDict(extra="forbid")
    integrations: list[IntegrationRequest]


RESPONSES: tuple[type[BaseModel], ...] = (
    SharedDependency,
    Registration,
    TenantSet,
    Integration,
    IntegrationDetail,
    IntegrationList,
    LiveCheck,
    Principal,
    CatalogEntry,
    IncidentList,
    Healthy,
    Ready,
    Problem,
    Silence,
    SilenceList,
    IntegrationHistory,
    IncidentHistory,
    HistorySummary,
    DeliveryExamples,
)
REQUESTS: tuple[type[BaseModel], ...] = (SilenceRequest, IntegrationRequest, TenantSetRequest)

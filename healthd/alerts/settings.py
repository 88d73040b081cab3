"""The `alerting:` block of healthd's config, as frozen pydantic models.

`healthd/config.py` embeds `AlertingSettings` as its `alerting:` key. Secrets are
`env:`/`file:` references resolved at validation (`healthd.secrets.Secret`) and durations
use `healthd.durations.Duration`, so a bad value fails with its key path before anything
starts. `hide_input_in_errors` keeps pydantic from echoing input values (a literal secret
pasted by mistake) in its messages.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    FilePath,
    field_validator,
    model_validator,
)

from healthd.durations import Duration
from healthd.secrets import Secret

RuleName = Literal[
    "bridge_unreachable", "integration_failing", "provider_outage", "egress_down", "tenant_failing"
]
RULE_NAMES: tuple[RuleName, ...] = (
    "bridge_unreachable",
    "integration_failing",
    "provider_outage",
    "egress_down",
    "tenant_failing",
)


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


def _url(value: str, schemes: tuple[str, ...]) -> str:
    if not value.startswith(tuple(f"{s}://" for s in schemes)) or "://" == value[-3:]:
        raise ValueError(f"must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
    return value.rstrip("/")


class PagerDutySettings(_Settings):
    routing_key: Secret
    # The pagerduty client refuses any base URL that is not https:// (PROVIDERS.md D2).
    events_url: str = "https://events.pagerduty.com"
    ca_bundle: FilePath | None = None
    timeout: Duration = timedelta(seconds=10)
    source: str = Field(default="healthd", min_length=1)

    @field_validator("events_url")
    @classmethod
    def _https(cls, value: str) -> str:
        return _url(value, ("https",))


class BridgeUnreachableRule(_Settings):
    enabled: bool = True
    page_after: Duration = timedelta(minutes=10)


class IntegrationFailingRule(_Settings):
    enabled: bool = True


class ProviderOutageRule(_Settings):
    enabled: bool = True
    min_share: float = Field(default=0.3, gt=0, le=1)
    min_count: int = Field(default=3, ge=1)


class EgressDownRule(_Settings):
    enabled: bool = True
    min_providers: int = Field(default=2, ge=1)


class TenantFailingRule(_Settings):
    """Posts a tenant's own failing integrations to its webhook (never pages on-call)."""

    enabled: bool = True


class RulesSettings(_Settings):
    bridge_unreachable: BridgeUnreachableRule = BridgeUnreachableRule()
    integration_failing: IntegrationFailingRule = IntegrationFailingRule()
    provider_outage: ProviderOutageRule = ProviderOutageRule()
    egress_down: EgressDownRule = EgressDownRule()
    tenant_failing: TenantFailingRule = TenantFailingRule()


class MaintenanceWindow(_Settings):
    """Silences rules between `start` (inclusive) and `end` (exclusive).

    Selectors narrow the window: an empty selector matches anything; a non-empty one
    matches only conditions that carry a listed value (so a window for one tenant never
    silences the tenant-less `egress_down`). Silencing blocks triggers, never resolves.
    """

    name: str = Field(min_length=1)
    start: AwareDatetime
    end: AwareDatetime
    rules: Literal["all"] | tuple[RuleName, ...] = "all"
    integrations: tuple[str, ...] = ()
    tenants: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _ordered(self) -> MaintenanceWindow:
        if self.end <= self.start:
            raise ValueError(f"maintenance window {self.name!r} ends before it starts")
        return self

    def silences(
        self,
        rule: str,
        at: datetime,
        *,
        integration: str | None = None,
        tenant: str | None = None,
        provider: str | None = None,
    ) -> bool:
        if not self.start <= at < self.end:
            return False
        if self.rules != "all" and rule not in self.rules:
            return False
        return all(
            not selector or value in selector
            for selector, value in (
                (self.integrations, integration),
                (self.tenants, tenant),
                (self.providers, provider),
            )
        )


class OutboxSettings(_Settings):
    backoff_initial: Duration = timedelta(seconds=5)
    backoff_max: Duration = timedelta(minutes=5)
    # How many times an event the receiver calls invalid (PagerDuty 400) is tried before
    # it is rejected for good. 1: reject at the first 400; retrying a bad event cannot help.
    max_attempts_400: int = Field(default=1, ge=1)
    # Bound on one delivery attempt, on top of the notifier's own HTTP timeout.
    send_timeout: Duration = timedelta(seconds=30)

    @model_validator(mode="after")
    def _ordered(self) -> OutboxSettings:
        if self.backoff_max < self.backoff_initial:
            raise ValueError("backoff_max must not be shorter than backoff_initial")
        return self


class WebhookSettings(_Settings):
    """A tenant's notification webhook: JSON POSTs signed with HMAC-SHA256 of `secret`."""

    url: str
    secret: Secret

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        return _url(value, ("http", "https"))


class AlertingSettings(_Settings):
    """Without a `pagerduty` block, rules still run and incidents are recorded, but nothing
    is sent to on-call; `healthd.alerts.build_notifiers` says so at start in a warning."""

    pagerduty: PagerDutySettings | None = None
    rules: RulesSettings = RulesSettings()
    maintenance: tuple[MaintenanceWindow, ...] = ()
    outbox: OutboxSettings = OutboxSettings()
    webhooks: dict[str, WebhookSettings] = Field(default_factory=dict)
    status_url: str | None = None

    @field_validator("status_url")
    @classmethod
    def _status_url(cls, value: str | None) -> str | None:
        return None if value is None else _url(value, ("http", "https"))

    @property
    def source(self) -> str:
        return self.pagerduty.source if self.pagerduty else "healthd"

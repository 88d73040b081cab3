"""The `alerting:` block of healthd's config, as frozen pydantic models.

`healthd/config.py` embeds `AlertingSettings` as its `alerting:` key. Secrets are
`env:`/`file:` references resolved at validation (`healthd.secrets.Secret`) and durations
use `healthd.durations.Duration`, so a bad value fails with its key path before anything
starts. The `rules:` block is made from the rule table (`healthd.alerts.rules.table`):
each rule's settings model lives in its own module.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    Field,
    FilePath,
    create_model,
    field_validator,
    model_validator,
)

from healthd.alerts._settings_model import SettingsModel
from healthd.alerts.rules._base import Rule, RuleSettings
from healthd.alerts.rules.table import RULES
from healthd.durations import Duration
from healthd.secrets import Secret

S = TypeVar("S", bound=RuleSettings)

# The rule names, from the rule table. mypy cannot read a Literal built at run time, so it
# sees `str`; pydantic validates against the Literal, so an unknown name is rejected.
if TYPE_CHECKING:
    RuleName = str
else:
    RuleName = Literal[tuple(rule.name for rule in RULES)]


def _url(value: str, schemes: tuple[str, ...]) -> str:
    if not value.startswith(tuple(f"{s}://" for s in schemes)) or "://" == value[-3:]:
        raise ValueError(f"must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
    return value.rstrip("/")


class PagerDutySettings(SettingsModel):
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


class RulesBlock(SettingsModel):
    """The `rules:` block: one field per rule in `RULES`, named after the rule and typed by
    its `settings` model, made below from the table."""

    def of(self, rule: Rule[S]) -> S:
        """`rule`'s settings, typed (attribute access by name is untyped)."""
        value = getattr(self, rule.name)
        if not isinstance(value, rule.settings):
            raise TypeError(f"alerting.rules.{rule.name} is not a {rule.settings.__name__}")
        return value

    if TYPE_CHECKING:
        # The fields come from the rule table at import time, out of mypy's sight.
        def __getattr__(self, name: str) -> Any: ...


if TYPE_CHECKING:
    RulesSettings = RulesBlock
else:
    RulesSettings = create_model(
        "RulesSettings",
        __base__=RulesBlock,
        __doc__=RulesBlock.__doc__,
        **{rule.name: (rule.settings, rule.settings()) for rule in RULES},
    )


class MaintenanceWindow(SettingsModel):
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


class OutboxSettings(SettingsModel):
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


class WebhookSettings(SettingsModel):
    """A tenant's notification webhook: JSON POSTs signed with HMAC-SHA256 of `secret`."""

    url: str
    secret: Secret

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        return _url(value, ("http", "https"))


class AlertingSettings(SettingsModel):
    """Without a `pagerduty` block, rules still run and incidents are recorded, but nothing
    is sent to on-call; `healthd.alerts.notifiers.build_notifiers` says so at start in a
    warning."""

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

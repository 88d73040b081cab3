"""What every rule shares: the inputs it may read, the views built from them, the
conditions it returns, and the `Rule` base a rule module subclasses.

The rules see an integration only through `RuleInputs`, a projection of its state and
latest result: a `View` is built from nothing else, so a rule cannot read a field that
`rule_inputs()` leaves out, and the engine's "did this run change what a rule reads?"
(`rule_inputs(before) != rule_inputs(after)`) cannot silently miss one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from healthd.alerts._settings_model import SettingsModel
from healthd.alerts.channels import Audience
from healthd.model import (
    Category,
    Finding,
    Integration,
    IntegrationState,
    ProbeResult,
    Severity,
    Status,
)

TOP_CODES = 5  # how many finding codes an aggregate page lists

# The check under which a probe reports the provider's status page (`probes._statuspage`).
STATUS_PAGE_CHECK = "platform"


class RuleSettings(SettingsModel):
    """A rule's block under `alerting.rules.<name>`; every rule can be turned off."""

    enabled: bool = True


@dataclass(frozen=True, kw_only=True, slots=True)
class RuleInputs:
    """Everything the rules read of one integration's state and latest result.

    Two runs with equal inputs cannot change any rule's outcome, so the engine evaluates
    only after a run that changed them (or on its tick, for what time alone changes). A
    rule that needs another field of the state or the result adds it here and in
    `rule_inputs()`; it has no other way to read it.
    """

    status: Status  # the state machine's effective (debounced) status
    since: datetime | None
    consecutive_failures: int
    unreachable_since: datetime | None
    result_status: Status | None  # the latest run's own status; None before the first run
    findings: tuple[Finding, ...]  # the latest run's findings


def rule_inputs(state: IntegrationState, result: ProbeResult | None) -> RuleInputs:
    """The projection of `state` and `result` that the rules read (`RuleInputs`)."""
    return RuleInputs(
        status=state.status,
        since=state.since,
        consecutive_failures=state.consecutive_failures,
        unreachable_since=state.unreachable_since,
        result_status=result.status if result else None,
        findings=result.findings if result else (),
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class View:
    """One integration with what the rules may read of it, and what its findings say.

    What its findings say is worked out once, when the view is built (the engine builds
    one per change), not each time a rule asks: every evaluation reads the notable views
    several times over, a few thousand of them in a large fleet.

    - `bad_findings`: the findings that are failing or unreachable;
    - `failing`: the state machine calls it failing or unreachable;
    - `provider_failure` / `network_failure`: failing, with a bad finding of the
      provider's category / a network error;
    - `recovering`: still bad by the state machine, but the latest run was good: on its
      way back (M good runs to recover) or flapping. It keeps an open incident open and
      holds an open outage, but triggers nothing new: what failed is no longer what the
      probe sees, and the rule that held its page back may have just let go of it;
    - `answering`: the latest run reached it (any answer), though `unreachable_since`
      may still be set until M such runs in a row;
    - `succeeded`: the latest run was ok or degraded;
    - `witness`: it can tell whether its provider works: anything but failing for its
      own reasons only (account, sender configuration, ...); one on its way back
      reached it (provider_outage);
    - `status_page`: failing with a failing status-page finding of its provider (the
      provider says it is down itself; provider_outage).
    """

    integration: Integration
    inputs: RuleInputs
    bad_findings: tuple[Finding, ...] = field(init=False)
    failing: bool = field(init=False)
    provider_failure: bool = field(init=False)
    network_failure: bool = field(init=False)
    recovering: bool = field(init=False)
    answering: bool = field(init=False)
    succeeded: bool = field(init=False)
    witness: bool = field(init=False)
    status_page: bool = field(init=False)

    def __post_init__(self) -> None:
        inputs, result = self.inputs, self.inputs.result_status
        bad = tuple(f for f in inputs.findings if f.status.is_bad)
        failing = inputs.status.is_bad
        provider_failure = failing and any(f.category is Category.PROVIDER for f in bad)
        recovering = failing and result is not None and not result.is_bad
        derived = {
            "bad_findings": bad,
            "failing": failing,
            "provider_failure": provider_failure,
            "network_failure": failing and any(f.network_error for f in bad),
            "recovering": recovering,
            "answering": result is not None and result is not Status.UNREACHABLE,
            "succeeded": result in (Status.OK, Status.DEGRADED),
            "witness": not failing or provider_failure or recovering,
            "status_page": provider_failure
            and any(
                f.check == STATUS_PAGE_CHECK
                and f.status is Status.FAILING
                and f.category is Category.PROVIDER
                for f in bad
            ),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)


@dataclass(slots=True)
class Tally:
    """What the aggregate rules read of one provider's notable integrations, as counts
    the fleet keeps up to date per change (`View.tally`), so that an outage of thousands
    costs each evaluation O(1) per provider, not a pass over its members.

    - `affected`: failing with provider-side findings (`View.provider_failure`);
    - `recovering`: on their way back (`View.recovering`) and not affected;
    - `non_witnesses`: not `View.witness`;
    - `status_pages`: affected with a failing status-page finding (`View.status_page`);
    - `affected_paging`: affected, and the integration pages;
    - `network`: failing with network errors (`View.network_failure`);
    - `network_recovering`: recovering and not failing with network errors;
    - `codes`: the affected integrations' provider-category finding codes, counted.
    """

    affected: int = 0
    recovering: int = 0
    non_witnesses: int = 0
    status_pages: int = 0
    affected_paging: int = 0
    network: int = 0
    network_recovering: int = 0
    codes: Counter[str] = field(default_factory=Counter)

    def count(self, view: View, by: int) -> None:
        """Adds (`by` 1) or takes away (-1) what `view` contributes."""
        affected = view.provider_failure
        self.affected += by * affected
        self.recovering += by * (view.recovering and not affected)
        self.non_witnesses += by * (not view.witness)
        self.status_pages += by * view.status_page
        self.affected_paging += by * (affected and view.integration.pages)
        self.network += by * view.network_failure
        self.network_recovering += by * (view.recovering and not view.network_failure)
        if affected:
            for f in view.bad_findings:
                if f.category is Category.PROVIDER:
                    self.codes[f.code] += by
                    if not self.codes[f.code]:
                        del self.codes[f.code]

    def top_codes(self) -> list[tuple[str, int]]:
        """The `TOP_CODES` most frequent codes, ties by code: the same whatever order the
        integrations changed in."""
        return sorted(self.codes.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_CODES]


class Notables(Protocol):
    """The fleet as a scene reads it (`healthd.alerts.rules._fleet.Fleet`)."""

    @property
    def views(self) -> tuple[View, ...]: ...

    @property
    def members(self) -> Mapping[str, int]: ...

    @property
    def tallies(self) -> Mapping[str, Tally]: ...

    @property
    def succeeded(self) -> int: ...

    def tenants_without_sms_fallback(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class Scene:
    """What one evaluation shows every rule: the fleet (`Notables`: the views of the
    notable integrations, sorted by integration id, since the quiet ones can neither
    raise nor hold a condition; each provider's members and `Tally`; whether any
    integration's latest run succeeded; the tenants without an SMS fallback), the
    incidents open now (by dedup key), the time, the tenants with a webhook, and since
    when and why healthd's own store fails (None while it is healthy).

    The fleet is read through properties, not copied in: the incremental engine
    (`healthd.alerts.rules._tracker`) builds a scene per step and reads the views only
    for a condition that triggers."""

    fleet: Notables
    open_keys: Set[str]
    now: datetime
    webhook_tenants: frozenset[str]
    store_failing_since: datetime | None = None
    store_problem: str | None = None

    @property
    def views(self) -> tuple[View, ...]:
        return self.fleet.views

    @property
    def members(self) -> Mapping[str, int]:
        return self.fleet.members

    @property
    def any_succeeded(self) -> bool:
        return self.fleet.succeeded > 0

    @property
    def without_sms_fallback(self) -> tuple[str, ...]:
        return self.fleet.tenants_without_sms_fallback()


class Lazy(Mapping[str, Any]):
    """A condition's details worked out on first read: an aggregate condition's lists
    of members are read only when it triggers (its incident and event carry them), not
    at each evaluation it merely holds."""

    def __init__(self, make: Callable[[], Mapping[str, Any]]) -> None:
        self._make: Callable[[], Mapping[str, Any]] | None = make
        self._value: Mapping[str, Any] = {}

    def _get(self) -> Mapping[str, Any]:
        if self._make is not None:
            self._value, self._make = self._make(), None
        return self._value

    def __getitem__(self, key: str) -> Any:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


@dataclass(frozen=True, kw_only=True, slots=True)
class Condition:
    """One thing that should have an open incident now.

    `audience` says who it is for; `healthd.alerts.routing` turns that into a channel.
    `view` is the integration it is about (None for a condition over many), which later
    rules' `suppresses()` read. `recovering`: the condition holds, so it keeps an open
    incident open, but it triggers nothing new (see `View.recovering`).
    """

    rule: str
    dedup_key: str
    audience: Audience
    summary: str
    severity: Severity
    integration: str | None = None
    provider: str | None = None
    tenant: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    view: View | None = None
    recovering: bool = False


S = TypeVar("S", bound=RuleSettings)


class Rule(ABC, Generic[S]):
    """One alert rule: a module under `healthd/alerts/rules/` and a row in `RULES`.

    - `name` is its key under `alerting.rules`, the incident's `rule`, and what a
      maintenance window or silence lists in `rules:`;
    - `settings` is the model of its block there (a `RuleSettings`);
    - `conditions()` says what should have an open incident now, from the scene alone
      (pure: no I/O, no clock);
    - `edges()` says when time alone may change its conditions (the engine sleeps until
      the earliest of them when nothing else changes);
    - `suppresses()` says which conditions of the rules after it in `RULES` it holds back
      while `held` (its own conditions, true now) is not empty. Held back means not
      triggered; a held-back condition still keeps its open incident open. It decides
      from the held conditions' labels (key, provider, tenant, integration), not their
      summary or details: the engine looks again at what it holds back only when the
      set of held keys changes.

    A rule about one integration at a time subclasses `IntegrationRule`. Any other rule
    (an aggregate: the store, egress, a provider's outage) has its `conditions()` called
    at every step of the engine, so it reads the fleet's counters (`Scene.fleet`,
    `Tally`), not the views, and leaves lists of members to `Lazy` details.
    """

    name: str
    settings: type[S]

    @abstractmethod
    def conditions(self, scene: Scene, settings: S) -> Iterable[Condition]: ...

    def edges(self, scene: Scene, settings: S) -> Iterable[datetime]:
        """The times after `scene.now` at which time alone may change `conditions()`
        (none for a rule that reads only the fleet): the engine wakes at the earliest."""
        return ()

    def suppresses(self, held: Sequence[Condition], condition: Condition) -> bool:
        return False


class IntegrationRule(Rule[S]):
    """A rule whose conditions are each about one integration and read nothing of the
    scene but its view, the time and the settings (`condition_of`, `edges_of`).

    The incremental engine caches each integration's conditions and derives them again
    only when its view changed or one of its edges passed, so such a rule holds back
    nothing (`suppresses` stays False): no later rule's outcome may depend on how many
    of its conditions hold."""

    @abstractmethod
    def condition_of(self, view: View, scene: Scene, settings: S) -> Condition | None:
        """The condition about `view` that should have an open incident now, if any."""

    def edges_of(self, view: View, scene: Scene, settings: S) -> Iterable[datetime]:
        """The times after `scene.now` at which time alone may change `condition_of`."""
        return ()

    def conditions(self, scene: Scene, settings: S) -> Iterator[Condition]:
        for view in scene.views:
            cond = self.condition_of(view, scene, settings)
            if cond is not None:
                yield cond

    def edges(self, scene: Scene, settings: S) -> Iterator[datetime]:
        for view in scene.views:
            yield from self.edges_of(view, scene, settings)

    def suppresses(self, held: Sequence[Condition], condition: Condition) -> bool:
        return False


def finding_details(view: View) -> list[dict[str, Any]]:
    """The bad findings with their fixes, as a page's custom details carry them."""
    return [
        {k: v for k, v in f.to_dict().items() if v not in (None, [], "")} for f in view.bad_findings
    ]


def integration_condition(
    rule: str,
    view: View,
    *,
    dedup_key: str,
    audience: Audience,
    summary: str,
    severity: Severity,
    details: Mapping[str, Any] | None = None,
    recovering: bool | None = None,
) -> Condition:
    """A condition about one integration: its labels from the view, so each rule states only
    its key, audience, wording and severity. The details are `integration_details` and the
    recovering flag the view's, unless the rule says otherwise."""
    integration = view.integration
    return Condition(
        rule=rule,
        dedup_key=dedup_key,
        audience=audience,
        summary=summary,
        severity=severity,
        integration=integration.id,
        provider=integration.provider,
        tenant=integration.tenant,
        details=integration_details(view) if details is None else details,
        view=view,
        recovering=view.recovering if recovering is None else recovering,
    )


def status_condition(
    rule: str,
    view: View,
    findings: Sequence[Finding],
    *,
    dedup_key: str,
    audience: Audience,
    severity: Severity,
) -> Condition:
    """A condition that an integration's status is bad, and why: the first of `findings`
    (the status alone without one). "twilio integration Acme SMS (acme) is failing: ...":
    on-call, who watches every tenant, reads whose it is; a tenant knows its own."""
    integration, status = view.integration, view.inputs.status
    name = integration.name or integration.id
    whose = f" ({integration.tenant})" if audience is Audience.ON_CALL else ""
    reason = findings[0].summary if findings else status.value
    return integration_condition(
        rule,
        view,
        dedup_key=dedup_key,
        audience=audience,
        summary=f"{integration.provider} integration {name}{whose} is {status.value}: {reason}",
        severity=severity,
    )


def integration_details(view: View) -> dict[str, Any]:
    """The custom details of a condition about one integration."""
    return {
        "integration": view.integration.id,
        "status": view.inputs.status.value,
        "since": view.inputs.since.isoformat() if view.inputs.since else None,
        "consecutive_failures": view.inputs.consecutive_failures,
        "findings": finding_details(view),
    }


def format_duration(delta: timedelta) -> str:
    """`12m`, `1h5m`, `45s`: how long, the way a person says it in a page."""
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    hours, rest = divmod(seconds // 60, 60)
    days, hours = divmod(hours, 24)
    parts = [(days, "d"), (hours, "h"), (rest, "m")]
    return "".join(f"{n}{unit}" for n, unit in parts if n) or "0m"

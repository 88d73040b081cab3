"""Alert rules: which incidents should be open now, as a pure function of state.

Level-triggered reconciliation. `evaluate()` computes every condition that should have an
open incident at `now`, each under a stable dedup key, and compares that set with the
incidents the store holds open (`_reconcile`): a condition true now with no open incident
is triggered (unless held back), an open incident whose condition no longer holds is
resolved (never blocked), a condition that holds and is already open produces nothing.

So each incident triggers once and resolves once by construction, a restart is safe (what
is open lives in the store; the same inputs give an empty plan), incidents left open by a
crash or by a rule that was since disabled are resolved on the first evaluation, and a
maintenance window that ends while its condition still holds yields exactly one trigger on
the next evaluation.

The rules, one module each, in suppression order (`table.RULES`; each module's docstring
states its condition, its dedup key and what it holds back):

- `store_failing`: healthd's own store has failed to write for longer than `after`;

- `egress_down`: healthd's own network is down; holds back `provider_outage`,
  `bridge_unreachable` and every network failure of one integration;
- `provider_outage`: one provider fails, as its integrations see it, in a fleet of any
  size (one integration included); holds back that provider's provider-category
  `integration_failing` pages, and once open holds while it still holds one back
  (holding back);
- `bridge_unreachable`: the bridge's unreachable timer ran past `page_after`;
- `integration_failing`: a paging integration fails;
- `tenant_failing`: a tenant's own integration fails, for its webhook.

Each condition says who it is for (`Audience`); `healthd.alerts.routing` picks the
channel (PagerDuty, `webhook:<tenant>`) and whether it can be delivered.

Recovering. An integration the state machine still calls bad whose latest run was good
(it needs M good runs to recover), or a bridge with `unreachable_since` still set that
answered its latest probe, triggers nothing new: it keeps an incident already open open,
but a page held back (by egress_down, an outage, a silence) is not released for something
that already works again; were it released, it would resolve one probe later.

Flapping. Rules read only the state machine's debounced view (`RuleInputs`): the
effective `status` (N failures to fail, M successes to recover) and `unreachable_since`.
A flapping integration therefore pages only once the state machine calls it failing and
resolves only once it calls it recovered. A flapping bridge pages when the
`unreachable_since` the state machine keeps is older than `page_after`: as long as the
state machine does not clear that timestamp (it clears it when the bridge counts as
reachable again), short answers in the middle of an outage neither restart the ten-minute
timer nor resolve an open page; each time it is cleared, the timer starts over, so a
bridge that is back for good between outages shorter than `page_after` never pages.

`healthd.alerts.settings` builds its `rules:` block from `table.RULES`, so the modules of
this package import the settings module for types only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from healthd.alerts.rules._base import (
    Condition,
    Rule,
    RuleInputs,
    Scene,
    format_duration,
    rule_inputs,
)
from healthd.alerts.rules._events import SUMMARY_LIMIT, one_line
from healthd.alerts.rules._fleet import Fleet
from healthd.alerts.rules._reconcile import AlertPlan, reconcile
from healthd.alerts.rules._tracker import Tracker
from healthd.alerts.rules.table import RULES
from healthd.model import Incident, Integration, IntegrationState, ProbeResult

if TYPE_CHECKING:
    from healthd.alerts.settings import AlertingSettings, MaintenanceWindow

__all__ = [
    "RULES",
    "SUMMARY_LIMIT",
    "AlertPlan",
    "Fleet",
    "RuleInputs",
    "Tracker",
    "evaluate",
    "evaluate_fleet",
    "next_edge",
    "format_duration",
    "one_line",
    "rule_inputs",
]


def evaluate(
    *,
    integrations: Mapping[str, Integration],
    states: Mapping[str, IntegrationState],
    results: Mapping[str, ProbeResult],
    open_incidents: Sequence[Incident],
    settings: AlertingSettings,
    now: datetime,
    silences: Sequence[MaintenanceWindow] = (),
    store_failing_since: datetime | None = None,
    store_problem: str | None = None,
) -> AlertPlan:
    """Reconcile the conditions true at `now` with `open_incidents`. Pure: no I/O, no clock.

    The rules run in `RULES` order; a condition is held back when it is recovering or an
    enabled rule before it, whose own conditions hold now, suppresses it. `silences` are
    windows set at run time (the admin API) on top of the configured
    `settings.maintenance`; both only hold back triggers.
    """
    return evaluate_fleet(
        Fleet.of(integrations, states, results),
        open_incidents=open_incidents,
        settings=settings,
        now=now,
        silences=silences,
        store_failing_since=store_failing_since,
        store_problem=store_problem,
    )


def evaluate_fleet(
    fleet: Fleet,
    *,
    open_incidents: Sequence[Incident],
    settings: AlertingSettings,
    now: datetime,
    silences: Sequence[MaintenanceWindow] = (),
    store_failing_since: datetime | None = None,
    store_problem: str | None = None,
) -> AlertPlan:
    """`evaluate()` over a `Fleet`: the cost follows the notable integrations, not the
    fleet's size (`Tracker` follows only what changed, with the same plan)."""
    scene = _scene(
        fleet,
        open_incidents=open_incidents,
        settings=settings,
        now=now,
        store_failing_since=store_failing_since,
        store_problem=store_problem,
    )
    holding: list[tuple[Rule[Any], list[Condition]]] = []
    conditions: list[tuple[Condition, bool]] = []  # (condition, held back)
    for rule in RULES:
        rule_settings = settings.rules.of(rule)
        if not rule_settings.enabled:
            continue
        own = list(rule.conditions(scene, rule_settings))
        for cond in own:
            held_back = cond.recovering or any(r.suppresses(h, cond) for r, h in holding)
            conditions.append((cond, held_back))
        if own:
            holding.append((rule, own))
    windows = (*settings.maintenance, *silences)
    return reconcile(conditions, open_incidents, scene.open_keys, windows, settings, now)


def next_edge(
    fleet: Fleet,
    *,
    settings: AlertingSettings,
    now: datetime,
    silences: Sequence[MaintenanceWindow] = (),
    store_failing_since: datetime | None = None,
) -> datetime | None:
    """The earliest time after `now` at which time alone may change the plan: a rule's
    edge (`Rule.edges`: a bridge's `unreachable_since + page_after`, the store's
    `failing_since + after`) or a maintenance window or silence starting or ending.
    Until then, and until a rule input changes, an evaluation would find nothing to do."""
    scene = _scene(
        fleet,
        open_incidents=(),
        settings=settings,
        now=now,
        store_failing_since=store_failing_since,
    )
    edges = [
        edge
        for rule in RULES
        if settings.rules.of(rule).enabled
        for edge in rule.edges(scene, settings.rules.of(rule))
    ]
    for window in (*settings.maintenance, *silences):
        edges.extend(t for t in (window.start, window.end) if t > now)
    return min(edges, default=None)


def _scene(
    fleet: Fleet,
    *,
    open_incidents: Sequence[Incident],
    settings: AlertingSettings,
    now: datetime,
    store_failing_since: datetime | None = None,
    store_problem: str | None = None,
) -> Scene:
    return Scene(
        fleet=fleet,
        open_keys=frozenset(i.dedup_key for i in open_incidents if i.is_open),
        now=now,
        webhook_tenants=frozenset(settings.webhooks),
        store_failing_since=store_failing_since,
        store_problem=store_problem,
    )

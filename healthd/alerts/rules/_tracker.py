"""The rules kept up to date per change: the plan of `evaluate()`, at the cost of what changed.

A full evaluation reads every notable view with every rule. When one run changes one
integration, or an outage turns thousands failing at once, the plan can change only

- for the integrations whose view changed (the fleet's dirty set) or whose time edge
  passed (a heap keyed by due time; entries for an edge that no longer holds are skipped
  when they reach the top): their per-integration conditions (`IntegrationRule`) are
  derived again and no one else's;
- through the aggregate rules (store, egress, provider outage), which read the fleet's
  counters (`Tally`), so evaluating them costs O(providers) however many changed;
- for a condition held back or silenced until now (pending): looked at again only when
  what holds it back changes (the conditions of the rules that suppress, the maintenance
  windows and silences in force), so a silence over 10,000 failing integrations costs
  nothing per step while it lasts, and one pass when it ends;
- for an open incident whose condition stopped holding: only the conditions lost in this
  step are candidates (all open incidents on the first step after a build).

So `Tracker.step` returns exactly the plan `evaluate()` returns for the same world
(tests/alerts/test_incremental.py checks it for random sequences of runs, bursts, registry
changes, clock advances, store failures and silences). A condition that triggers is built
again with the scene of now, so its summary and details are those of the moment it pages.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from healthd.alerts.rules._base import Condition, IntegrationRule, Rule, RuleSettings, Scene
from healthd.alerts.rules._fleet import Fleet
from healthd.alerts.rules._reconcile import AlertPlan, resolves, silenced, triggered
from healthd.alerts.rules.table import RULES
from healthd.model import Incident

if TYPE_CHECKING:
    from healthd.alerts.settings import AlertingSettings, MaintenanceWindow

_ORDER = {rule.name: n for n, rule in enumerate(RULES)}


class Tracker:
    """One fleet's conditions, kept from step to step; its owner (the alert engine) feeds
    the fleet (`Fleet.update`, `add`, `remove`) and builds a new tracker when it cannot
    say what changed (another replica's runs, a lease taken over)."""

    def __init__(self, fleet: Fleet, settings: AlertingSettings) -> None:
        self.fleet = fleet
        self._settings = settings
        self._webhooks = frozenset(settings.webhooks)
        enabled = [(r, settings.rules.of(r)) for r in RULES if settings.rules.of(r).enabled]
        self._per: list[tuple[IntegrationRule[Any], RuleSettings]] = [
            (r, s) for r, s in enabled if isinstance(r, IntegrationRule)
        ]
        self._by_name = {r.name: (r, s) for r, s in self._per}
        self._aggregate: list[tuple[Rule[Any], RuleSettings]] = [
            (r, s) for r, s in enabled if not isinstance(r, IntegrationRule)
        ]
        self._conditions: dict[str, tuple[Condition, ...]] = {}  # by integration id
        self._wanted: dict[str, Condition] = {}  # the per-integration ones, by dedup key
        self._held: dict[str, Condition] = {}  # the aggregate ones of the last step
        self._pending: set[str] = set()  # holding, not open, held back or silenced
        self._heap: list[tuple[datetime, str]] = []
        self._edges: dict[str, tuple[datetime, ...]] = {}  # the current ones, by id
        self._context: object = None
        self._fresh = True

    def step(
        self,
        *,
        open_incidents: Mapping[str, Incident],
        now: datetime,
        silences: Sequence[MaintenanceWindow] = (),
        store_failing_since: datetime | None = None,
        store_problem: str | None = None,
    ) -> AlertPlan:
        """The plan at `now`; `open_incidents` (open ones only, by dedup key) is what the
        store holds open, as for `evaluate()`."""
        scene = self._scene(open_incidents, now, store_failing_since, store_problem)
        first, self._fresh = self._fresh, False
        dirty = self.fleet.take_dirty() | self._due(now)
        if first:
            dirty.update(v.integration.id for v in self.fleet.views)
        check: set[str] = set()
        lost: set[str] = set()
        for iid in dirty:
            self._derive(iid, scene, check, lost)
        held: dict[str, Condition] = {}
        holding: list[tuple[Rule[Any], list[Condition]]] = []
        for rule, rule_settings in self._aggregate:
            own = list(rule.conditions(scene, rule_settings))
            held.update((c.dedup_key, c) for c in own)
            if own:
                holding.append((rule, own))
        lost.update(self._held.keys() - held.keys())
        self._held = held
        self._pending -= lost
        check.update(held)
        windows = (*self._settings.maintenance, *silences)
        in_force = tuple(w for w in windows if w.start <= now < w.end)
        # What holds a condition back besides itself: `Rule.suppresses` decides from the
        # labels of the conditions that suppress, so their keys stand for them.
        context = (tuple((r.name, tuple(c.dedup_key for c in h)) for r, h in holding), in_force)
        if first or context != self._context:
            check |= self._pending
        self._context = context
        fired = [
            self._now_condition(cond, scene)
            for cond in self._triggers(check, open_incidents, holding, in_force, now)
        ]
        opened, events = triggered(
            ((c, False) for c in fired), scene.open_keys, (), self._settings, now
        )
        candidates = open_incidents.keys() if first else lost
        gone = [
            open_incidents[key]
            for key in candidates
            if key in open_incidents and key not in self._wanted and key not in held
        ]
        resolved, resolve_events = resolves(gone, self._settings, now)
        return AlertPlan(opened=opened, resolved=resolved, events=(*events, *resolve_events))

    def next_edge(
        self,
        *,
        now: datetime,
        silences: Sequence[MaintenanceWindow] = (),
        store_failing_since: datetime | None = None,
    ) -> datetime | None:
        """As `rules.next_edge`: the earliest time after `now` at which time alone may
        change the plan; the integrations' edges come from the heap's top."""
        heap = self._heap
        while heap and (heap[0][0] <= now or heap[0][0] not in self._edges.get(heap[0][1], ())):
            heapq.heappop(heap)
        scene = self._scene({}, now, store_failing_since, None)
        edges = [edge for rule, s in self._aggregate for edge in rule.edges(scene, s)]
        if heap:
            edges.append(heap[0][0])
        for window in (*self._settings.maintenance, *silences):
            edges.extend(t for t in (window.start, window.end) if t > now)
        return min(edges, default=None)

    def _scene(
        self,
        open_incidents: Mapping[str, Incident],
        now: datetime,
        store_failing_since: datetime | None,
        store_problem: str | None,
    ) -> Scene:
        return Scene(
            fleet=self.fleet,
            open_keys=open_incidents.keys(),
            now=now,
            webhook_tenants=self._webhooks,
            store_failing_since=store_failing_since,
            store_problem=store_problem,
        )

    def _due(self, now: datetime) -> set[str]:
        """The integrations one of whose edges has passed (stale entries dropped)."""
        due: set[str] = set()
        heap = self._heap
        while heap and heap[0][0] <= now:
            edge, iid = heapq.heappop(heap)
            if edge in self._edges.get(iid, ()):
                due.add(iid)
        return due

    def _derive(self, iid: str, scene: Scene, check: set[str], lost: set[str]) -> None:
        """Derives `iid`'s per-integration conditions and edges again from its view."""
        for cond in self._conditions.pop(iid, ()):
            del self._wanted[cond.dedup_key]
            lost.add(cond.dedup_key)
        view = self.fleet.view(iid)
        conditions: tuple[Condition, ...] = ()
        edges: tuple[datetime, ...] = ()
        if view is not None:
            conditions = tuple(
                c for r, s in self._per if (c := r.condition_of(view, scene, s)) is not None
            )
            edges = tuple(e for r, s in self._per for e in r.edges_of(view, scene, s))
        for cond in conditions:
            self._wanted[cond.dedup_key] = cond
            lost.discard(cond.dedup_key)
            check.add(cond.dedup_key)
        if conditions:
            self._conditions[iid] = conditions
        if edges and edges != self._edges.get(iid):
            for edge in edges:
                heapq.heappush(self._heap, (edge, iid))
        if edges:
            self._edges[iid] = edges
        else:
            self._edges.pop(iid, None)

    def _triggers(
        self,
        check: set[str],
        open_incidents: Mapping[str, Incident],
        holding: list[tuple[Rule[Any], list[Condition]]],
        in_force: Sequence[MaintenanceWindow],
        now: datetime,
    ) -> list[Condition]:
        """Of the conditions in `check`, those that trigger now, in the order a full
        evaluation emits them (rule order, then integration id or provider); the others
        that hold and are not open are kept pending."""
        fire: list[Condition] = []
        for key in check:
            cond = self._wanted.get(key) or self._held.get(key)
            if cond is None or key in open_incidents:
                self._pending.discard(key)
                continue
            order = _ORDER[cond.rule]
            held_back = cond.recovering or any(
                r.suppresses(h, cond) for r, h in holding if _ORDER[r.name] < order
            )
            if held_back or silenced(cond, in_force, now):
                self._pending.add(key)
            else:
                self._pending.discard(key)
                fire.append(cond)
        fire.sort(key=lambda c: (_ORDER[c.rule], c.integration or c.provider or ""))
        return fire

    def _now_condition(self, cond: Condition, scene: Scene) -> Condition:
        """A per-integration condition as it reads now (its summary and details may have
        moved on since it was derived: a bridge's time down, the tenants it leaves)."""
        rule = self._by_name.get(cond.rule)
        if rule is None or cond.view is None:
            return cond  # an aggregate one, derived in this step
        fresh = rule[0].condition_of(cond.view, scene, rule[1])
        assert fresh is not None  # its view has not changed since, nor has its edge
        return fresh

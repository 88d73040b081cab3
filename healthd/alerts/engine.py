"""Runs the alert rules against the fleet's latest view and records what they decide.

Probe results arrive one at a time, thousands per sweep; evaluating every rule over every
integration after each one would cost O(n²) per sweep, and even one evaluation over
100,000 integrations costs most of a second. So the engine keeps a `Tracker`
(`healthd.alerts.rules._tracker`) over a `Fleet` (`healthd.alerts.rules._fleet`): the
views of the notable integrations (failing, degraded, unreachable timer running), counts
for the quiet rest and per-provider tallies, which `observe` updates in O(1) after a run
that changed what a rule reads (`rules.rule_inputs`), and which `added`/`removed` update
in O(1) for a registry change; each marks the engine dirty. One task evaluates at most
every `min_gap` seconds, and an evaluation derives again only the conditions of what
changed since the last one (a burst of 10,000 changes costs 10,000 derivations, not
10,000 passes over the fleet). Time alone changes a plan only at an edge (`next_edge`: a
bridge's `unreachable_since + page_after`, the store's `failing_since + after`, a window
or silence starting or ending), so the task sleeps until the earliest edge, or at most
`tick` seconds, and on waking evaluates only if something is due (`step`): an idle fleet
costs a few comparisons per tick. Evaluations are serialised, so two can never both open
the same incident.

The engine reads the fleet through a `snapshot` callable (the runner's), not the runner
itself: alerts sit below the runner, which calls `observe` after each run.

The open incidents are kept in memory and follow each plan there first, then in the
store. A store that cannot write does not stop paging: the plan's events go to the
outbox's `Held` queue (sent from memory), the engine remembers that the store is behind,
and once the store takes writes again it is caught up in one `apply_alerts`: the incidents
open in memory and not in the store are opened there, the ones the store holds open and
memory does not are resolved at the time they were, and the held events not yet sent move
into the store's outbox. The store's health (`StoreHealth`) is shown to the rules, so a
store failing long enough pages of its own (`store_failing`).

Run-time silences (`self.silences`, set through the admin API) are loaded with the open
incidents and passed to every evaluation beside the configured maintenance windows.

Several replicas (`lease`, an `AlertLease` over the PostgreSQL store): only the replica
holding the alert lease evaluates; one that takes the lease over reads the open incidents
and silences again first. Its plans are fenced by the lease's token: a plan refused with
`LeaseLost` (this replica was paused past its lease) is dropped, not held, since another
replica pages now. With a lease, a store that cannot be reached is a lease not held: no
replica pages from memory, where two could page the same incident.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime

import structlog

from healthd.alerts.outbox import Held
from healthd.alerts.rules import AlertPlan, Fleet, Tracker, rule_inputs
from healthd.alerts.settings import AlertingSettings, MaintenanceWindow
from healthd.alerts.silences import Silences
from healthd.clock import Clock
from healthd.cluster.lease import AlertLease, Holding
from healthd.errors import LeaseLost, StoreError
from healthd.interfaces import Store
from healthd.metrics import AlertView
from healthd.model import Incident, Integration, IntegrationState, ProbeResult, RunChange
from healthd.store.health import StoreHealth

log = structlog.get_logger("healthd.alerts")

#: The fleet as the rules read it: integrations, their states and their latest results,
#: each by integration id (`Runner.snapshot`).
Snapshot = Callable[
    [], tuple[Mapping[str, Integration], Mapping[str, IntegrationState], Mapping[str, ProbeResult]]
]


class AlertEngine:
    def __init__(
        self,
        *,
        snapshot: Snapshot,
        store: Store,
        settings: AlertingSettings,
        clock: Clock,
        tick: float = 5.0,
        min_gap: float = 0.2,
        held: Held | None = None,
        health: StoreHealth | None = None,
        lease: AlertLease | None = None,
    ) -> None:
        self._snapshot = snapshot
        self._lease = lease
        self._store = store
        self._settings = settings
        self._clock = clock
        self._tick = tick
        self._min_gap = min_gap
        self._dirty = asyncio.Event()
        self._lock = asyncio.Lock()
        self._open: dict[str, Incident] = {}  # by dedup key
        self._open_rules: Counter[str] = Counter()
        self._held = held if held is not None else Held()
        self._health = health
        # Set when a plan could not be written: the store is caught up before the next one.
        self._behind = False
        self._resolved_at: dict[str, datetime] = {}  # resolves the store has not taken yet
        self.silences = Silences(store, clock)
        self._view = AlertView(pending={}, oldest_pending_age=None, open_incidents={})
        # Kept up to date by `observe`, `reread`, `added` and `removed`; built from the
        # snapshot by the first evaluation, and again after a lease taken or a plan dropped.
        self._tracker: Tracker | None = None
        # When time alone next changes the plan, and what the last evaluation saw of the
        # inputs that are not the fleet's (the store's health, the silences in force).
        self._edge: datetime | None = None
        self._seen: tuple[datetime | None, tuple[MaintenanceWindow, ...]] | None = None

    async def load(self) -> list[Incident]:
        incidents = [i for i in await self._store.open_incidents() if i.is_open]
        self._open = {i.dedup_key: i for i in incidents}
        self._open_rules = Counter(i.rule for i in incidents)
        self._tracker = None  # what it knew of the open incidents may be stale
        await self.silences.load()
        await self.refresh_view()
        return incidents

    def observe(self, change: RunChange) -> None:
        """After each probe run: if the run changed what a rule reads, update that one
        integration in the fleet and evaluate soon.

        A healthy fleet changes nothing run after run. Evaluating every rule over 10,000
        integrations took about 80 ms, and doing it five times a second for unchanged
        input cost about 0.16 ms per probe at a 10 s interval, and more than
        all the probing at the default 60 s (bench/RESULTS.md).
        """
        after = rule_inputs(change.after, change.result)
        if rule_inputs(change.before, change.before_result) != after:
            if self._tracker is not None:
                self._tracker.fleet.update(change.after.integration_id, after)
            self._dirty.set()

    def added(self, integration: Integration, state: IntegrationState) -> None:
        """An integration added or replaced at run time (the registry API, a reload), with
        its state in the runner: an O(1) change to the fleet, evaluated soon. A replaced
        one keeps what its runs told the engine (the runner keeps its state and results);
        a new one has no result yet."""
        if self._tracker is not None:
            self._tracker.fleet.add(integration, rule_inputs(state, None))
        self._dirty.set()

    def removed(self, integration_id: str) -> None:
        """An integration taken out at run time: its open incidents resolve on the next
        evaluation, once, as any condition that no longer holds."""
        if self._tracker is not None:
            self._tracker.fleet.remove(integration_id)
        self._dirty.set()

    def reread(self, changes: Iterable[RunChange]) -> None:
        """Other replicas' runs, read from the database into the runner (`Runner.adopt`
        gives what changed for each integration read): each is taken as a run of this
        replica's is. A read-back every member lease brings a quarter of the fleet's rows
        at a 60 s interval, and almost none changes what a rule reads; rebuilding the
        fleet from the snapshot instead cost a full evaluation each time (bench/engine.py,
        "read-back")."""
        for change in changes:
            self.observe(change)

    def alert_view(self) -> AlertView:
        """The outbox and incident gauges as last refreshed (on load and after each evaluation)."""
        return self._view

    async def evaluate(self) -> AlertPlan:
        """Evaluate the rules now over a fresh snapshot and record the plan; returns it.

        Tests call it after changing the world behind the engine's back; the run loop
        uses `step`, which follows the changes `observe` was told of."""
        async with self._lock:
            if not await self._holds_lease():
                return AlertPlan()
            self._tracker = self._build()
            return await self._evaluate(self._tracker)

    async def step(self) -> AlertPlan | None:
        """What the run loop does each time it wakes: evaluate (and return the plan) if a
        rule input changed since the last evaluation, a time edge has passed, the store's
        health or the silences in force changed, or the store is behind; else None, for
        then an evaluation would find nothing to do (tests/alerts/test_incremental.py)."""
        async with self._lock:
            if not await self._holds_lease():  # renewed at every wake-up, idle or not
                return None
            if self._tracker is None:
                self._tracker = self._build()
            elif not (self._dirty.is_set() or self._due(self._clock.now())):
                if any(self._view.pending.values()):
                    await self.refresh_view()  # the oldest pending event's age moves on
                return None
            return await self._evaluate(self._tracker)

    def _build(self) -> Tracker:
        return Tracker(Fleet.of(*self._snapshot()), self._settings)

    def seconds_to_edge(self) -> float | None:
        """How long until the next time edge, as the clock tells it (None: no edge)."""
        if self._edge is None:
            return None
        return max(0.0, (self._edge - self._clock.now()).total_seconds())

    def _due(self, now: datetime) -> bool:
        return (
            self._behind
            or (self._edge is not None and now >= self._edge)
            or self._seen != self._outside(now)
        )

    def _outside(self, now: datetime) -> tuple[datetime | None, tuple[MaintenanceWindow, ...]]:
        """What an evaluation reads besides the fleet and the open incidents."""
        health = self._health
        return (health.failing_since if health else None, self.silences.active(now))

    async def _evaluate(self, tracker: Tracker) -> AlertPlan:
        """One evaluation of what changed since the last; the caller holds the lock."""
        self._dirty.clear()
        now = self._clock.now()
        if self._behind:
            await self._catch_up(now)
        health = self._health
        self._seen = failing_since, silences = self._outside(now)
        plan = tracker.step(
            open_incidents=self._open,
            now=now,
            silences=silences,
            store_failing_since=failing_since,
            store_problem=health.reason if health else None,
        )
        self._edge = tracker.next_edge(
            now=now, silences=silences, store_failing_since=failing_since
        )
        if not plan.empty:
            if not await self._write(plan, now):
                self._tracker = None  # it counted the plan's incidents as open now
                return AlertPlan()
            self._apply(plan)
            for incident in plan.opened:
                log.warning(
                    "incident_opened",
                    dedup_key=incident.dedup_key,
                    rule=incident.rule,
                    summary=incident.summary,
                )
            for key, _at in plan.resolved:
                log.info("incident_resolved", dedup_key=key)
        await self.refresh_view()
        return plan

    def _apply(self, plan: AlertPlan) -> None:
        """The open incidents after `plan`, as the store applies it (`Store.apply_alerts`):
        opening one already open keeps its start."""
        for incident in plan.opened:
            existing = self._open.get(incident.dedup_key)
            if existing is None:
                self._open_rules[incident.rule] += 1
            else:
                incident = replace(incident, opened_at=existing.opened_at)
            self._open[incident.dedup_key] = incident
        for key, _at in plan.resolved:
            gone = self._open.pop(key, None)
            if gone is not None:
                self._open_rules[gone.rule] -= 1

    async def _holds_lease(self) -> bool:
        """Whether this replica may evaluate: always without a lease (one process). A
        replica that does not hold it still follows the stored incidents, so its gauges
        (healthd_open_incidents) show what the holder decided."""
        if self._lease is None:
            return True
        try:
            holding = await self._lease.hold()
            if holding is Holding.TAKEN:
                self._tracker = None  # as the database has it now, not as last seen
            if holding is not Holding.HELD:
                await self.load()
        except StoreError:
            return False
        return holding is not Holding.NOT_HELD

    async def _write(self, plan: AlertPlan, now: datetime) -> bool:
        """Writes the plan, or holds its events for the outbox and falls behind; False when
        the plan was dropped because this replica lost the alert lease."""
        if not self._behind:
            try:
                await self._store.apply_alerts(
                    opened=plan.opened, resolved=plan.resolved, events=plan.events, now=now
                )
                return True
            except LeaseLost:
                assert self._lease is not None  # only a fenced store raises it
                self._lease.lost()
                return False
            except StoreError:
                self._behind = True  # the store's health logs and counts it
        self._held.hold(plan.events)
        self._resolved_at.update(plan.resolved)
        return True

    async def _catch_up(self, now: datetime) -> None:
        """Brings the store to the incidents open in memory, with the held events unsent."""
        try:
            stored = {i.dedup_key for i in await self._store.open_incidents()}
        except StoreError:
            return
        mine = self._open.keys()
        opened = sorted(
            (i for key, i in self._open.items() if key not in stored),
            key=lambda i: (i.opened_at, i.dedup_key),
        )
        resolved = [(key, self._resolved_at.get(key, now)) for key in sorted(stored - mine)]
        events = self._held.take()
        try:
            await self._store.apply_alerts(opened=opened, resolved=resolved, events=events, now=now)
        except LeaseLost:
            # Another replica holds the lease now and pages from the stored incidents.
            assert self._lease is not None
            self._lease.lost()
            return
        except StoreError:
            self._held.give_back(events)
            return
        self._behind = False
        self._resolved_at.clear()
        log.info("store_caught_up", opened=len(opened), resolved=len(resolved), events=len(events))

    async def refresh_view(self) -> None:
        """The gauges; held events count as pending. A store that cannot be read keeps
        the last counts it gave."""
        now = self._clock.now()
        pending, oldest = self._view.pending, self._view.oldest_pending_age
        try:
            pending = await self._store.outbox_pending()
            oldest = await self._store.outbox_oldest_pending(now)
        except StoreError:
            pass
        held = self._held.by_channel()
        self._view = AlertView(
            pending={c: pending.get(c, 0) + held.get(c, 0) for c in {*pending, *held}},
            oldest_pending_age=oldest,
            open_incidents={rule: n for rule, n in self._open_rules.items() if n},
        )

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            edge = self.seconds_to_edge()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._tick if edge is None else min(edge, self._tick)):
                    await self._dirty.wait()
            try:
                await self.step()
            except Exception:
                # The store may be briefly unavailable; the next tick evaluates again.
                log.exception("alert_evaluation_failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._min_gap):
                    await stop.wait()

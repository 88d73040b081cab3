"""The engine's incremental plan equals a full evaluation.

The engine follows the fleet through `observe` (one integration per run), `added` and
`removed` (the registry), `reread` (other replicas' runs read back from the database) and,
when it wakes, derives again only what changed (`rules.Tracker`), if anything is due
(`AlertEngine.step`). For random sequences of probe runs, bursts (every integration of a
provider in one go, as an outage or a recovery), integrations added, replaced and removed,
runs made by another replica and read back later (several runs of one integration in one
read-back, or a state not stored at all), clock advances past time edges, store failures
and recoveries, silences and wake-ups, every wake-up's plan (an empty one when the engine
found nothing due) must be the plan a full `evaluate()` over the same world gives at that
moment, with its own record of what is open.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from healthd.alerts.engine import AlertEngine
from healthd.alerts.rules import AlertPlan, Fleet, evaluate, next_edge, rule_inputs
from healthd.alerts.settings import MaintenanceWindow
from healthd.clock import FakeClock
from healthd.errors import StoreError
from healthd.model import (
    Category,
    Finding,
    Incident,
    IntegrationState,
    RunChange,
    Status,
    Thresholds,
)
from healthd.secrets import Secret
from healthd.store import MemoryStore
from healthd.store.health import StoreHealth
from probes.google import GoogleProbe
from probes.sendgrid import SendGridProbe
from tests.alerts.test_rules import (
    AUTH,
    DEGRADED,
    HTTP_500,
    OK,
    T0,
    TIMEOUT,
    World,
    integration,
)
from tests.alerts.test_rules import settings as alerting

STATUS_PAGE = Finding(
    check="platform",
    status=Status.FAILING,
    code="statuspage.major_outage",
    summary="the provider says it is down",
    category=Category.PROVIDER,
)
FINDINGS = (OK, AUTH, HTTP_500, TIMEOUT, DEGRADED, STATUS_PAGE)
QUICK = Thresholds(failure_threshold=1, success_threshold=2, page_after=timedelta(minutes=3))
FLEET = (
    integration("bridge-dc1", "imessage_bridge", thresholds=QUICK),
    integration("bridge-dc2", "imessage_bridge"),
    integration("t1", "twilio", "acme", page=True, thresholds=QUICK),
    integration("t2", "twilio", "globex"),
    integration("t3", "twilio", "globex", thresholds=QUICK),
    integration("s1", "sendgrid", "acme", traits=SendGridProbe.traits, thresholds=QUICK),
    integration("g1", "google", "initech", traits=GoogleProbe.traits, page=True),
)
# What the registry may add (or replace an integration of FLEET with, by id).
POOL = (
    integration("bridge-dc3", "imessage_bridge", "acme", thresholds=QUICK),
    integration("t4", "twilio", "initech", thresholds=QUICK),
    integration("t1", "twilio", "acme", thresholds=QUICK),  # t1, no longer paging
    integration("t2", "twilio", "globex", page=True, thresholds=QUICK),
    integration("s1", "sendgrid", "globex", traits=SendGridProbe.traits),  # another tenant
    integration("g2", "google", "acme", traits=GoogleProbe.traits, page=True, thresholds=QUICK),
)
PROVIDERS = sorted({i.provider for i in (*FLEET, *POOL)})
WINDOWS = [
    {
        "name": "bridges",
        "start": T0 + timedelta(minutes=5),
        "end": T0 + timedelta(minutes=17),
        "rules": ["bridge_unreachable"],
    },
    {
        "name": "globex",
        "start": T0 + timedelta(minutes=20),
        "end": T0 + timedelta(minutes=41),
        "tenants": ["globex"],
        "rules": ["tenant_failing", "integration_failing"],
    },
]
SETTINGS = alerting(
    webhooks={"acme": {"url": "https://hooks.acme.test/healthd", "secret": Secret("w")}},
    maintenance=WINDOWS,
    rules={"provider_outage": {"min_count": 2}, "store_failing": {"after": "2m"}},
)

runs = st.tuples(st.just("run"), st.integers(0, len(FLEET) - 1), st.integers(0, len(FINDINGS) - 1))
advances = st.tuples(st.just("advance"), st.integers(1, 300), st.just(0))
store = st.tuples(st.just("store"), st.booleans(), st.just(0))
silences = st.tuples(st.just("silence"), st.integers(0, 600), st.integers(30, 900))
unsilence = st.tuples(st.just("unsilence"), st.just(0), st.just(0))
wakes = st.tuples(st.just("step"), st.just(0), st.just(0))
bursts = st.tuples(
    st.just("burst"), st.integers(0, len(PROVIDERS) - 1), st.integers(0, len(FINDINGS) - 1)
)
registers = st.tuples(st.just("register"), st.integers(0, len(POOL) - 1), st.just(0))
removes = st.tuples(st.just("remove"), st.integers(0, len(FLEET) + len(POOL) - 1), st.just(0))
elsewhere = st.tuples(
    st.just("elsewhere"), st.integers(0, len(FLEET) - 1), st.integers(0, len(FINDINGS) - 1)
)
unstored = st.tuples(st.just("unstored"), st.integers(0, len(FLEET) - 1), st.just(0))
rereads = st.tuples(st.just("reread"), st.just(0), st.just(0))
actions = st.lists(
    st.one_of(runs, runs, advances, advances, store, silences, unsilence, wakes, wakes),
    max_size=80,
)
# Many changes per step: bursts and registry changes between wake-ups.
churn = st.lists(
    st.one_of(runs, bursts, bursts, registers, removes, advances, store, silences, rereads, wakes),
    max_size=80,
)
# Other replicas' runs, in the database until a read-back brings them into the runner.
replicas = st.lists(
    st.one_of(runs, elsewhere, elsewhere, unstored, rereads, rereads, advances, removes, wakes),
    max_size=80,
)


@dataclass
class Reference:
    """A full evaluation at every wake-up, with the open incidents it recorded itself."""

    world: World
    health: StoreHealth
    open: dict[str, Incident] = field(default_factory=dict)

    def evaluate(self, engine: AlertEngine, clock: FakeClock) -> AlertPlan:
        now = clock.now()
        plan = evaluate(
            integrations=self.world.integrations,
            states=self.world.states,
            results=self.world.results,
            open_incidents=list(self.open.values()),
            settings=SETTINGS,
            now=now,
            silences=engine.silences.active(now),
            store_failing_since=self.health.failing_since,
            store_problem=self.health.reason,
        )
        self.open.update((i.dedup_key, i) for i in plan.opened)
        for key, _ in plan.resolved:
            del self.open[key]
        return plan

    def seconds_to_edge(self, engine: AlertEngine, clock: FakeClock) -> float | None:
        """When time alone next changes the plan, by `rules.next_edge` over the world."""
        now = clock.now()
        edge = next_edge(
            Fleet.of(self.world.integrations, self.world.states, self.world.results),
            settings=SETTINGS,
            now=now,
            silences=engine.silences.active(now),
            store_failing_since=self.health.failing_since,
        )
        return None if edge is None else (edge - now).total_seconds()


async def play(
    script: list[tuple[str, Any, int]], edges: list[tuple[float | None, float | None]] | None = None
) -> list[tuple[AlertPlan, AlertPlan]]:
    """Plays `script` (runs, clock advances, store failures and recoveries, silences
    added and removed, wake-ups); returns (engine's plan, full evaluation's plan) at each
    wake-up."""
    world = World(SETTINGS)
    world.integrations.update((i.id, i) for i in FLEET)  # never probed yet: unknown
    clock = FakeClock(T0)
    health = StoreHealth(clock)
    engine = AlertEngine(
        snapshot=lambda: (world.integrations, world.states, world.results),
        store=MemoryStore(),
        settings=SETTINGS,
        clock=clock,
        health=health,
    )
    await engine.load()
    reference = Reference(world, health)
    database = Database(world)
    plans = []
    for n, (action, a, b) in enumerate([*script, ("step", 0, 0)]):
        if action == "run" and FLEET[a].id in world.integrations:
            engine.observe(run(world, FLEET[a].id, b, clock))
        elif action == "burst":
            for iid, item in sorted(world.integrations.items()):
                if item.provider == PROVIDERS[a]:
                    engine.observe(run(world, iid, b, clock))
        elif action == "register":
            item = POOL[a]  # a new id, or a replacement that keeps the state and results
            world.integrations[item.id] = item
            state = world.states.get(item.id) or IntegrationState(integration_id=item.id)
            engine.added(item, state)
        elif action == "remove":
            iid = (*FLEET, *POOL)[a].id
            if world.integrations.pop(iid, None) is not None:
                world.states.pop(iid, None)
                world.results.pop(iid, None)
                engine.removed(iid)
        elif action == "elsewhere" and FLEET[a].id in world.integrations:
            database.run(FLEET[a].id, b, clock)
        elif action == "unstored" and FLEET[a].id in world.integrations:
            database.forget(FLEET[a].id)
        elif action == "reread":
            engine.reread(database.read_back())
        elif action == "advance":
            clock.advance(timedelta(seconds=a))
        elif action == "store" and a:
            health.failed("record_run", StoreError("disk full"))
        elif action == "store":
            health.succeeded()
        elif action == "silence":
            start = clock.now() + timedelta(seconds=a)
            window = MaintenanceWindow(name=f"s{n}", start=start, end=start + timedelta(seconds=b))
            await engine.silences.add(window, created_by="test")
        elif action == "unsilence":
            for silence in engine.silences.list()[:1]:
                await engine.silences.remove(silence.name, removed_by="test")
        else:
            plans.append((await engine.step() or AlertPlan(), reference.evaluate(engine, clock)))
            if edges is not None:
                edges.append((engine.seconds_to_edge(), reference.seconds_to_edge(engine, clock)))
    return plans


class Database:
    """What other replicas wrote since the last read-back: their runs go to the database,
    not to this replica's world (the runner), until `read_back` takes them in as
    `Runner.adopt` does (tests/test_runner.py checks it does so)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.written = World(SETTINGS)
        self.written.integrations = world.integrations

    def run(self, iid: str, finding: int, clock: FakeClock) -> None:
        """Another replica's run of `iid`, from the state it read (or wrote last)."""
        written, world = self.written, self.world
        if iid not in written.states:
            written.states[iid] = world.states.get(iid) or IntegrationState(integration_id=iid)
            if iid in world.results:
                written.results[iid] = world.results[iid]
        written.run(iid, FINDINGS[finding], at=clock.now())

    def forget(self, iid: str) -> None:
        """`iid`'s read-back finds no state stored (a handover before its first write
        there): it starts afresh, and keeps its latest result."""
        self.written.states[iid] = IntegrationState(integration_id=iid)
        self.written.results.pop(iid, None)

    def read_back(self) -> list[RunChange]:
        """The rows written since the last read-back, into the world: one change each,
        from what the world held to what was read; one removed meanwhile is skipped."""
        world, written = self.world, self.written
        changes = []
        for iid, state in sorted(written.states.items()):
            if iid not in world.integrations:
                continue
            before = world.states.get(iid) or IntegrationState(integration_id=iid)
            before_result = world.results.get(iid)
            world.states[iid] = state
            if iid in written.results:
                world.results[iid] = written.results[iid]
            changes.append(
                RunChange(
                    before=before,
                    before_result=before_result,
                    after=state,
                    result=world.results.get(iid),
                )
            )
        written.states.clear()
        written.results.clear()
        return changes


def run(world: World, iid: str, finding: int, clock: FakeClock) -> RunChange:
    """One probe run of `iid` finding FINDINGS[finding], as the runner reports it."""
    before = world.states.get(iid) or IntegrationState(integration_id=iid)
    before_result = world.results.get(iid)
    world.run(iid, FINDINGS[finding], at=clock.now())
    return RunChange(
        before=before,
        before_result=before_result,
        after=world.states[iid],
        result=world.results[iid],
    )


TIMING_OUT = FINDINGS.index(TIMEOUT)
HTTP_5XX = FINDINGS.index(HTTP_500)


@settings(max_examples=300, deadline=None)
@given(actions)
# The store fails and keeps failing past `after` while no run changes anything.
@example([("step", 0, 0), ("store", True, 0), ("advance", 200, 0), ("step", 0, 0)])
# A silence holding back a bridge page is removed before it would end.
@example(
    [
        ("run", 0, TIMING_OUT),
        ("silence", 0, 900),
        ("advance", 200, 0),
        ("step", 0, 0),
        ("unsilence", 0, 0),
        ("step", 0, 0),
    ]
)
def test_every_wake_up_plans_what_a_full_evaluation_plans(
    script: list[tuple[str, Any, int]],
) -> None:
    for incremental, full in asyncio.run(play(script)):
        assert incremental == full


def test_a_bridge_that_stays_down_pages_at_its_edge_without_any_new_run() -> None:
    """The case the property rests on most: time alone makes the bridge page, and the
    engine's edge is exactly `unreachable_since + page_after` (QUICK: 3 minutes)."""
    script: list[tuple[str, Any, int]] = [
        ("run", 0, TIMING_OUT),
        ("step", 0, 0),
        ("advance", 180, 0),
        ("step", 0, 0),
        ("advance", 1, 0),
    ]
    plans = asyncio.run(play(script))
    assert [p.opened for p, _ in plans[:2]] == [(), ()]
    assert [i.rule for i in plans[2][0].opened] == ["bridge_unreachable"]


@settings(max_examples=200, deadline=None)
@given(churn)
# An outage of every Twilio integration, registry changes in the middle of it, then the
# recovery, each in one step.
@example(
    [
        ("burst", PROVIDERS.index("twilio"), HTTP_5XX),
        ("step", 0, 0),
        ("register", 1, 0),
        ("register", 2, 0),
        ("remove", 3, 0),
        ("burst", PROVIDERS.index("twilio"), HTTP_5XX),
        ("step", 0, 0),
        ("burst", PROVIDERS.index("twilio"), 0),
        ("burst", PROVIDERS.index("twilio"), 0),
        ("step", 0, 0),
    ]
)
# Built again (another replica's runs) while an outage is open: it still holds.
@example(
    [
        ("burst", PROVIDERS.index("twilio"), HTTP_5XX),
        ("step", 0, 0),
        ("reread", 0, 0),
        ("step", 0, 0),
    ]
)
# A bridge added at run time goes down, pages at its edge, and is removed while paging.
@example(
    [
        ("register", 0, 0),
        ("step", 0, 0),
        ("advance", 1, 0),
        ("remove", 0, 0),
        ("step", 0, 0),
    ]
)
def test_bursts_and_registry_changes_plan_what_a_full_evaluation_plans(
    script: list[tuple[str, Any, int]],
) -> None:
    for incremental, full in asyncio.run(play(script)):
        assert incremental == full


@settings(max_examples=200, deadline=None)
@given(replicas)
# Another replica sees t1 (paging) fail three times, then recover, each read back at once;
# then a bridge's unreachable timer, started elsewhere, pages at its edge after a read-back.
@example(
    [
        ("elsewhere", 2, HTTP_5XX),
        ("elsewhere", 2, HTTP_5XX),
        ("elsewhere", 2, HTTP_5XX),
        ("reread", 0, 0),
        ("step", 0, 0),
        ("elsewhere", 2, 0),
        ("elsewhere", 2, 0),
        ("reread", 0, 0),
        ("step", 0, 0),
        ("elsewhere", 0, TIMING_OUT),
        ("reread", 0, 0),
        ("step", 0, 0),
        ("advance", 181, 0),
        ("step", 0, 0),
    ]
)
# Read back with no state stored while its own runs here had it failing.
@example([("run", 2, HTTP_5XX), ("step", 0, 0), ("unstored", 2, 0), ("reread", 0, 0)])
def test_other_replicas_runs_read_back_plan_what_a_full_evaluation_plans(
    script: list[tuple[str, Any, int]],
) -> None:
    for incremental, full in asyncio.run(play(script)):
        assert incremental == full


@settings(max_examples=200, deadline=None)
@given(churn)
def test_the_fleet_kept_by_changes_counts_what_one_built_from_scratch_counts(
    script: list[tuple[str, Any, int]],
) -> None:
    """The counters the aggregate rules read (members, tallies, successes, tenants
    without an SMS fallback) and the notable views, after any sequence of runs and
    registry changes, are those of `Fleet.of` over the same world."""
    world = World(SETTINGS)
    world.integrations.update((i.id, i) for i in FLEET)
    clock = FakeClock(T0)
    kept = Fleet.of(world.integrations, world.states, world.results)
    for action, a, b in script:
        if action == "run" and FLEET[a].id in world.integrations:
            change = run(world, FLEET[a].id, b, clock)
            kept.update(change.after.integration_id, rule_inputs(change.after, change.result))
        elif action == "register":
            world.integrations[POOL[a].id] = POOL[a]
            state = world.states.get(POOL[a].id) or IntegrationState(integration_id=POOL[a].id)
            kept.add(POOL[a], rule_inputs(state, None))
        elif action == "remove":
            iid = (*FLEET, *POOL)[a].id
            world.integrations.pop(iid, None)
            world.states.pop(iid, None)
            world.results.pop(iid, None)
            kept.remove(iid)
        elif action == "advance":
            clock.advance(timedelta(seconds=a))
    built = Fleet.of(world.integrations, world.states, world.results)
    nonzero = {p: t for p, t in built.tallies.items() if t != type(t)()}
    assert {p: t for p, t in kept.tallies.items() if t != type(t)()} == nonzero
    assert (kept.members, kept.succeeded) == (built.members, built.succeeded)
    assert kept.tenants_without_sms_fallback() == built.tenants_without_sms_fallback()
    assert kept.views == built.views


@settings(max_examples=200, deadline=None)
@given(churn)
# The bridge is back before its page_after: its edge in the heap no longer holds.
@example([("run", 0, TIMING_OUT), ("step", 0, 0), ("run", 0, 0), ("run", 0, 0), ("step", 0, 0)])
def test_after_every_wake_up_the_engine_sleeps_until_the_edge_a_full_evaluation_finds(
    script: list[tuple[str, Any, int]],
) -> None:
    """The heap's top (stale entries skipped), the store's and the windows' edges: the
    same next edge as `rules.next_edge` over the whole world."""
    edges: list[tuple[float | None, float | None]] = []
    asyncio.run(play(script, edges))
    for incremental, full in edges:
        assert incremental == full

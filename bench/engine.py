"""The alert engine's cost per change at 10,000 and 100,000 integrations, without any network.

    python bench/engine.py [--integrations 10000 100000] [--repeat 3] [--steps 100]
                           [--cases runs registry read-back]

Over realistic state (`_fixtures.realistic_views`: mostly ok, about 10 % failing,
degraded or unreachable), with a memory store, CPU time (process time) of:

- after: what the engine does now, `observe` of each run plus `AlertEngine.step` (the
  `Tracker` derives only what changed; the store write and gauges included);
- before: what the engine's step did until session 5, over the same rules and the same
  changes: the fleet updated per run, then `evaluate_fleet` and `next_edge` over every
  notable view at each step, and for a registry change the fleet built again from the
  snapshot (`Fleet.of`); the store write is not included, so before is if anything low.

Cases, each turning quiet integrations failing with provider errors (a provider outage)
and back, timed both ways and halved:

- one change;
- a burst of 1,000 and of 10,000 in one step, and the same spread over `--steps` steps
  (runs finish over a sweep; the engine steps at most every `min_gap`, 0.2 s);
- a registry add (and the remove after it);
- a replica's read-back of the other replicas' runs (every member lease: with 3 replicas
  and a 15 s lease at a 60 s interval, a quarter of the others' share, n/6 rows), in
  steady state (new state objects, no rule input changed) and with 1,000 of the rows
  turning failing (and back, halved). After: `Runner.adopt`'s changes built and
  `AlertEngine.reread` of them, then `step`; before: the engine as it was until session
  6, which rebuilt its fleet from the snapshot and evaluated it whole (`evaluate()`, the
  same `Fleet.of` and full derivation; the runner's snapshot copy of three dicts is not
  included, so before is if anything low);
- an idle wake-up (`step` with nothing due, at most one per 5 s tick), and its share of
  a core;
- the floor: one pass over the fleet that does nothing (copying the states dict).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from _fixtures import realistic_views
from _machine import print_header, print_table

from healthd import log
from healthd.alerts.engine import AlertEngine
from healthd.alerts.rules import Fleet, evaluate_fleet, next_edge, rule_inputs
from healthd.alerts.settings import AlertingSettings
from healthd.clock import FakeClock
from healthd.model import (
    Category,
    Finding,
    Incident,
    Integration,
    IntegrationState,
    ProbeResult,
    RunChange,
    Status,
)
from healthd.store import MemoryStore

TICK_SECONDS = 5.0
CASES = ["runs", "registry", "read-back"]
HTTP_503 = Finding(
    check="api",
    status=Status.FAILING,
    code="http.503",
    summary="The provider answers 503",
    category=Category.PROVIDER,
)
HEADER = [
    "N",
    "notable",
    "case",
    "changes",
    "steps",
    "before ms",
    "after ms",
    "after µs per change",
    "before / after",
]


def process_ms(run: Callable[[], object]) -> float:
    t0 = time.process_time()
    run()
    return (time.process_time() - t0) * 1000


async def aprocess_ms(run: Callable[[], Awaitable[object]]) -> float:
    t0 = time.process_time()
    await run()
    return (time.process_time() - t0) * 1000


@dataclass
class World:
    """The fleet as the runner holds it, the engine over it, and the fleet the engine's
    step before session 5 kept (updated by the same runs)."""

    integrations: dict[str, Integration]
    states: dict[str, IntegrationState]
    results: dict[str, ProbeResult]
    engine: AlertEngine
    store: MemoryStore
    settings: AlertingSettings
    now: datetime
    old: Fleet
    bad: dict[str, tuple[tuple[IntegrationState, ProbeResult], ...]] = field(default_factory=dict)

    def snapshot(
        self,
    ) -> tuple[dict[str, Integration], dict[str, IntegrationState], dict[str, ProbeResult]]:
        return self.integrations, self.states, self.results

    def run(self, iid: str, failing: bool) -> RunChange:
        """One run of `iid` that turns it failing with provider errors, or back to ok
        (what it read before the first: `bad` holds both, made outside the timings)."""
        before, before_result = self.states[iid], self.results[iid]
        after, result = self.bad[iid][failing]
        self.states[iid], self.results[iid] = after, result
        return RunChange(before=before, before_result=before_result, after=after, result=result)

    def prepare(self, ids: list[str]) -> None:
        for iid in ids:
            if iid not in self.bad:
                ok, ok_result = self.states[iid], self.results[iid]
                failing = replace(ok, status=Status.FAILING, consecutive_failures=3)
                failed = replace(ok_result, status=Status.FAILING, findings=(HTTP_503,))
                self.bad[iid] = ((ok, ok_result), (failing, failed))

    async def after(self, groups: list[list[str]], failing: bool) -> None:
        for group in groups:
            for iid in group:
                self.engine.observe(self.run(iid, failing))
            await self.engine.step()

    async def before(self, groups: list[list[str]], failing: bool) -> None:
        """The same runs, the way the engine before session 5 stepped through them."""
        incidents = await self.store.open_incidents()
        for group in groups:
            for iid in group:
                change = self.run(iid, failing)
                inputs = rule_inputs(change.after, change.result)
                if rule_inputs(change.before, change.before_result) != inputs:
                    self.old.update(iid, inputs)
            self.old_step(incidents)

    def old_step(self, incidents: Sequence[Incident]) -> None:
        evaluate_fleet(self.old, open_incidents=incidents, settings=self.settings, now=self.now)
        next_edge(self.old, settings=self.settings, now=self.now)


async def build(n: int) -> World:
    views = realistic_views(n)
    now = datetime.now(UTC)
    integrations = {v.integration.id: v.integration for v in views}
    states = {v.integration.id: v.state for v in views}
    results = {
        iid: ProbeResult.from_findings(
            integration_id=iid, started_at=now, duration_seconds=0.1, findings=()
        )
        for iid in integrations
    }
    settings = AlertingSettings.model_validate({})
    store = MemoryStore()
    holder: list[World] = []
    engine = AlertEngine(
        snapshot=lambda: holder[0].snapshot(),
        store=store,
        settings=settings,
        clock=FakeClock(now),
    )
    world = World(
        integrations,
        states,
        results,
        engine,
        store,
        settings,
        now,
        Fleet.of(integrations, states, results),
    )
    holder.append(world)
    await engine.load()
    await engine.step()  # builds the tracker and opens what the state calls for
    return world


def chunks(ids: list[str], steps: int) -> list[list[str]]:
    size = -(-len(ids) // steps)
    return [ids[i : i + size] for i in range(0, len(ids), size)]


async def there_and_back(
    world: World, ids: list[str], steps: int, repeat: int
) -> tuple[float, float]:
    """(before, after) ms for `ids` turning failing and back over `steps` steps each way,
    halved: the median of `repeat` rounds."""
    groups = chunks(ids, steps)
    world.prepare(ids)
    befores, afters = [], []
    for _ in range(repeat):
        afters.append(
            (
                await aprocess_ms(lambda: world.after(groups, True))
                + await aprocess_ms(lambda: world.after(groups, False))
            )
            / 2
        )
        befores.append(
            (
                await aprocess_ms(lambda: world.before(groups, True))
                + await aprocess_ms(lambda: world.before(groups, False))
            )
            / 2
        )
    return statistics.median(befores), statistics.median(afters)


async def registry(world: World, repeat: int) -> tuple[float, float]:
    """(before, after) ms of one integration added at run time and then removed, halved."""
    template = next(iter(world.integrations.values()))
    added = replace(template, id="registered-000000")
    state = IntegrationState(integration_id=added.id)
    engine = world.engine

    async def after() -> None:
        world.integrations[added.id], world.states[added.id] = added, state
        engine.added(added, state)
        await engine.step()
        for table in (world.integrations, world.states):
            del table[added.id]
        engine.removed(added.id)
        await engine.step()

    async def before() -> None:
        incidents = await world.store.open_incidents()
        for _ in ("add", "remove"):
            world.old = Fleet.of(world.integrations, world.states, world.results)
            world.old_step(incidents)

    afters = [await aprocess_ms(after) / 2 for _ in range(repeat)]
    befores = [await aprocess_ms(before) / 2 for _ in range(repeat)]
    return statistics.median(befores), statistics.median(afters)


async def read_back(
    world: World, rows: list[str], failing: list[str], repeat: int
) -> tuple[float, float]:
    """(before, after) ms of a read-back of `rows` that turns `failing` failing, and of the
    next one that brings them back, halved: the median of `repeat` rounds."""
    world.prepare(failing)
    read = {iid: (replace(world.states[iid]), world.results[iid]) for iid in rows}

    def rows_read(turn: bool) -> dict[str, tuple[IntegrationState, ProbeResult]]:
        return read | {iid: world.bad[iid][turn] for iid in failing}

    async def after(turn: bool) -> None:
        changes = []
        for iid, (state, result) in rows_read(turn).items():
            before, before_result = world.states[iid], world.results[iid]
            world.states[iid], world.results[iid] = state, result
            changes.append(
                RunChange(before=before, before_result=before_result, after=state, result=result)
            )
        world.engine.reread(changes)
        await world.engine.step()

    async def before(turn: bool) -> None:
        for iid, (state, result) in rows_read(turn).items():
            world.states[iid], world.results[iid] = state, result
        await world.engine.evaluate()

    afters, befores = [], []
    for _ in range(repeat):
        afters.append(
            (await aprocess_ms(lambda: after(True)) + await aprocess_ms(lambda: after(False))) / 2
        )
        befores.append(
            (await aprocess_ms(lambda: before(True)) + await aprocess_ms(lambda: before(False))) / 2
        )
    return statistics.median(befores), statistics.median(afters)


async def measure(n: int, repeat: int, steps: int, cases: Sequence[str]) -> list[list[str]]:
    world = await build(n)
    notable = len(world.old.views)
    quiet = [iid for iid, s in world.states.items() if s.status is Status.OK]
    rows: list[list[str]] = []

    def row(case: str, changes: int, n_steps: int, before: float, after: float) -> None:
        rows.append(
            [
                f"{n:,}",
                f"{notable:,}",
                case,
                f"{changes:,}",
                str(n_steps),
                f"{before:.2f}",
                f"{after:.2f}",
                f"{after * 1000 / max(changes, 1):.1f}",
                f"{before / after:.0f}x" if after else "-",
            ]
        )

    if "runs" in cases:
        before, after = await there_and_back(world, quiet[:1], 1, repeat * 4)
        row("one change", 1, 1, before, after)
        for burst in (1_000, 10_000):
            ids = quiet[:burst]
            for n_steps in (1, steps):
                before, after = await there_and_back(world, ids, n_steps, repeat)
                case = "burst in one step" if n_steps == 1 else f"burst over {n_steps} steps"
                row(case, len(ids), n_steps, before, after)
    if "registry" in cases:
        before, after = await registry(world, repeat)
        row("registry add (and remove)", 1, 1, before, after)
    if "read-back" in cases:
        rows_read = list(world.states)[: n // 6]
        for failing in ([], quiet[:1_000]):
            before, after = await read_back(world, rows_read, failing, repeat)
            case = f"read-back of n/6 rows, {len(failing):,} turning failing"
            row(case, len(rows_read), 1, before, after)
    idle = statistics.median([await aprocess_ms(world.engine.step) for _ in range(repeat * 20)])
    rows.append(
        [
            f"{n:,}",
            f"{notable:,}",
            f"idle wake-up ({idle / 1000 / TICK_SECONDS * 100:.4f}% of a core at a 5 s tick)",
            "0",
            "1",
            "-",
            f"{idle:.3f}",
            "-",
            "-",
        ]
    )
    floor = statistics.median([process_ms(lambda: dict(world.states)) for _ in range(repeat)])
    rows.append(
        [
            f"{n:,}",
            f"{notable:,}",
            "floor: one pass over the fleet",
            "-",
            "-",
            "-",
            f"{floor:.2f}",
            "-",
            "-",
        ]
    )
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--integrations", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument(
        "--cases",
        nargs="+",
        choices=CASES,
        default=CASES,
        help="which changes to time (the idle wake-up and the floor always are)",
    )
    args = parser.parse_args(argv)
    log.configure([], level="error")  # the outages open and resolve incidents: not shown
    print_header("alert engine cost per change", "memory store, realistic state, no network")
    rows = [
        r
        for n in args.integrations
        for r in asyncio.run(measure(n, args.repeat, args.steps, args.cases))
    ]
    print_table(rows, HEADER)


if __name__ == "__main__":
    main()

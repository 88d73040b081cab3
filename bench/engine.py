"""The alert engine's cost at 10,000 and 100,000 integrations, without any network.

    python bench/engine.py [--integrations 10000 100000] [--repeat 5]

Over realistic state (`_fixtures.realistic_views`: mostly ok, a few degraded, failing or
unreachable), with a memory store, times:

- a full evaluation (`evaluate()`: every integration's view built and read by every rule),
  what every rule-input change and every 5 s tick cost before issue 17;
- one change (`observe` of a run that turns one integration failing and back, then `step`):
  what a rule-input change costs the engine now, with the notable views only;
- an idle wake-up (`step` with nothing due), which the engine does at most every tick, and
  the share of a core that is at the default 5 s tick;
- the floor: one pass over the fleet that does nothing (copying the states dict), the least
  any evaluation that looks at every integration could cost.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from _fixtures import realistic_views
from _machine import print_header, print_table

from healthd.alerts.engine import AlertEngine
from healthd.alerts.rules import evaluate
from healthd.alerts.settings import AlertingSettings
from healthd.clock import FakeClock
from healthd.model import Category, Finding, ProbeResult, RunChange, Status
from healthd.store import MemoryStore

TICK_SECONDS = 5.0
FAILED = Finding(
    check="api",
    status=Status.FAILING,
    code="bridge.auth_invalid",
    summary="The password is wrong",
    category=Category.ACCOUNT,
)


def median_ms(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        run()
        times.append(time.process_time() - t0)
    return statistics.median(times) * 1000


async def amedian_ms(repeat: int, run: Callable[[], Awaitable[object]]) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        await run()
        times.append(time.process_time() - t0)
    return statistics.median(times) * 1000


async def measure(n: int, repeat: int) -> list[str]:
    views = realistic_views(n)
    integrations = {v.integration.id: v.integration for v in views}
    states = {v.integration.id: v.state for v in views}
    now = datetime.now(UTC)
    results = {
        iid: ProbeResult.from_findings(
            integration_id=iid, started_at=now, duration_seconds=0.1, findings=()
        )
        for iid in integrations
    }
    settings = AlertingSettings.model_validate({})
    clock = FakeClock(now)
    engine = AlertEngine(
        snapshot=lambda: (integrations, states, results),
        store=MemoryStore(),
        settings=settings,
        clock=clock,
    )
    await engine.load()
    await engine.step()  # builds the fleet and opens what the state calls for
    full = median_ms(
        repeat,
        lambda: evaluate(
            integrations=integrations,
            states=states,
            results=results,
            open_incidents=[],
            settings=settings,
            now=now,
        ),
    )
    target = next(iid for iid, s in states.items() if s.status is Status.OK)
    ok_state, ok_result = states[target], results[target]
    bad_state = replace(ok_state, status=Status.FAILING, consecutive_failures=3)
    bad_result = replace(ok_result, status=Status.FAILING, findings=(FAILED,))

    async def one_change() -> None:
        for before, after in ((ok_state, bad_state), (bad_state, ok_state)):
            b_result, a_result = (
                (ok_result, bad_result) if after is bad_state else (bad_result, ok_result)
            )
            states[target], results[target] = after, a_result
            engine.observe(
                RunChange(before=before, before_result=b_result, after=after, result=a_result)
            )
            await engine.step()

    change = await amedian_ms(repeat * 4, one_change) / 2
    idle = await amedian_ms(repeat * 20, engine.step)
    floor = median_ms(repeat, lambda: dict(states))
    notable = len(engine._fleet.views) if engine._fleet else 0  # noqa: SLF001 - reported only
    return [
        f"{n:,}",
        f"{notable:,}",
        f"{full:.1f}",
        f"{change:.2f}",
        f"{idle:.3f}",
        f"{idle / 1000 / TICK_SECONDS * 100:.4f}%",
        f"{floor:.2f}",
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--integrations", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    print_header("alert engine cost", "memory store, realistic state, no network")
    rows = [asyncio.run(measure(n, args.repeat)) for n in args.integrations]
    print_table(
        rows,
        [
            "N",
            "notable",
            "full evaluate() ms (as every change and tick paid before)",
            "one change ms (now)",
            "idle wake-up ms",
            "idle, share of a core (5 s tick)",
            "floor: one pass ms",
        ],
    )


if __name__ == "__main__":
    main()

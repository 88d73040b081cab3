"""`/metrics` cost at 1k, 10k and 100k integrations, before and after, beside a floor.

    python bench/metrics.py [--integrations 1000 10000 100000] [--repeat 5] [--before DIR]

Each case runs in a fresh process over the daemon's registry (its `Instruments` plus
`HealthCollector` over an `IntegrationSeries`, filled the way the runner fills it) on
realistic state (`_fixtures.realistic_views`: a provider mix, 90 % of latest runs ok).
"after" is this tree's healthd; "before" is the healthd found in `--before` (a checkout of
main, say `git archive main | tar -x -C DIR`), imported from there by putting it first on
PYTHONPATH, through the same calls. Each prints what `/metrics` serves (`exposition`):
its render time (median), bytes and series; "update" is what the runner pays per probe
run to keep that state; "state" is the memory the kept state holds and "render peak" the
memory one rendering allocates at its peak (tracemalloc, in a separate pass so it does
not slow the timed one). "loop stall" is the longest an event loop with a task yielding
back to back went without a turn during one rendering, and how many turns that task got:
`exposition` called on the loop, and `MetricsEndpoint.render` (what `/metrics` runs; in
this tree it collects on the loop and formats in a worker thread, before it rendered on
the loop). The floor is prometheus_client's own
`generate_latest` over a registry of as many plain series (one labelled gauge) as the
body has, in the same process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from _fixtures import add_health, daemon_registry, realistic_views, series_count
from _machine import facts_text, print_table
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from healthd.metrics import Instruments, IntegrationSeries, MetricsEndpoint, View, exposition
from healthd.model import ProbeResult, Status

TARGET_MS_AT_100K = 300.0


def fill_instruments(instruments: Instruments, views: Sequence[View]) -> None:
    """One observation per integration, so every counter and histogram series exists."""
    for v in views:
        status = v.state.last_result_status
        instruments.observe(
            v.integration,
            ProbeResult(
                integration_id=v.integration.id,
                status=status,
                started_at=v.state.last_checked or datetime.now(UTC),
                duration_seconds=v.last_duration or 0.0,
            ),
        )
        if status is not Status.OK:
            instruments.findings.labels(
                v.integration.provider, f"{v.integration.provider}.{status.value}", "", "provider"
            ).inc()


def timed(fn: Callable[[], bytes], repeat: int) -> tuple[bytes, list[float]]:
    times, body = [], b""
    for _ in range(repeat):
        t0 = time.perf_counter()
        body = fn()
        times.append(time.perf_counter() - t0)
    return body, times


def traced(fn: Callable[[], object]) -> tuple[object, int, int]:
    """What `fn` returns, the memory it leaves allocated and its peak allocation (bytes)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        kept = fn()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return kept, current - before, peak - before


async def loop_stall(render: Callable[[], Awaitable[object]]) -> tuple[float, int]:
    """The longest the event loop went without a turn while `render` ran, and its turns.

    A task yields back to back meanwhile, as a loop full of probes would: on the loop the
    rendering takes every turn until it ends; in a worker thread it shares the interpreter.
    """
    turns, worst, done = 0, 0.0, asyncio.Event()

    async def ticker() -> None:
        nonlocal turns, worst
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0)
            now = time.perf_counter()
            worst, last, turns = max(worst, now - last), now, turns + 1

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    await render()
    done.set()
    await task
    return worst, turns


def stalls(registry: CollectorRegistry) -> dict[str, float]:
    """`loop_stall` for a rendering on the loop, and for what `/metrics` does
    (`MetricsEndpoint.render`: in this tree, collected on the loop and formatted in a
    worker thread)."""

    async def on_loop() -> bytes:
        return exposition(registry)

    async def both() -> dict[str, float]:
        loop_worst, loop_turns = await loop_stall(on_loop)
        endpoint_worst, endpoint_turns = await loop_stall(
            MetricsEndpoint(registry, max_age=0).render
        )
        return {
            "stall_loop_ms": loop_worst * 1000,
            "turns_loop": loop_turns,
            "stall_endpoint_ms": endpoint_worst * 1000,
            "turns_endpoint": endpoint_turns,
        }

    return asyncio.run(both())


def floor_registry(series: int) -> CollectorRegistry:
    """`series` plain series of one labelled gauge, the shape of a per-integration gauge."""
    registry = CollectorRegistry()
    gauge = Gauge(
        "floor_series",
        "plain series",
        ["integration", "provider", "tenant"],
        registry=registry,
    )
    for k in range(series):
        gauge.labels(f"twilio-{k:06d}", "twilio", f"tenant{k // 3:06d}").set(k * 0.5)
    return registry


def measure(n: int, repeat: int) -> dict[str, float]:
    views = realistic_views(n)

    def build() -> IntegrationSeries:
        series = IntegrationSeries()
        for v in views:
            series.update(v)
        return series

    t0 = time.perf_counter()
    build()
    update = (time.perf_counter() - t0) / n
    kept, state_bytes, _ = traced(build)
    assert isinstance(kept, IntegrationSeries)
    registry, instruments = daemon_registry()
    add_health(registry, kept)
    fill_instruments(instruments, views)
    body, times = timed(lambda: exposition(registry), repeat)
    _, _, render_peak = traced(lambda: exposition(registry))
    stall = stalls(registry)
    series = series_count(body)
    floor = floor_registry(series)
    _, floor_times = timed(lambda: generate_latest(floor), repeat)
    return {
        "n": n,
        "series": series,
        "bytes": len(body),
        "render_ms": statistics.median(times) * 1000,
        "render_min_ms": min(times) * 1000,
        "floor_ms": statistics.median(floor_times) * 1000,
        "update_us": update * 1e6,
        "state_mb": state_bytes / 1e6,
        "peak_mb": render_peak / 1e6,
        **stall,
    }


def worker(spec: str) -> None:
    args = json.loads(spec)
    print(json.dumps(measure(args["n"], args["repeat"])))


def run_case(tree: Path | None, n: int, repeat: int) -> dict[str, float]:
    """One case in a fresh process, importing healthd from `tree` (None: this tree)."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
    spec = json.dumps({"n": n, "repeat": repeat})
    out = subprocess.run(
        [sys.executable, __file__, "--worker", spec],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"worker {tree} {n} failed:\n{out.stderr}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def row(label: str, m: dict[str, float]) -> list[str]:
    verdict = ""
    if m["n"] == 100_000:
        verdict = "met" if m["render_ms"] < TARGET_MS_AT_100K else "NOT met"
    return [
        f"{int(m['n']):,}",
        label,
        f"{int(m['series']):,}",
        f"{m['series'] / m['n']:.2f}",
        f"{m['bytes'] / 1e6:.2f} MB",
        f"{m['render_ms']:.1f} ms (min {m['render_min_ms']:.1f})",
        f"{m['floor_ms']:.1f} ms",
        f"{m['update_us']:.1f} µs",
        f"{m['state_mb']:.1f} MB",
        f"{m['peak_mb']:.1f} MB",
        f"{m['stall_loop_ms']:.1f} ms ({int(m['turns_loop'])})",
        f"{m['stall_endpoint_ms']:.1f} ms ({int(m['turns_endpoint'])})",
        verdict,
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--integrations", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--before", type=Path, help="a checkout of main: its healthd is 'before'")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker)
        return
    print(f"# /metrics render cost ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})")
    print(facts_text())
    print()
    trees: list[tuple[str, Path | None]] = [("after", None)]
    if args.before:
        trees.insert(0, ("before", args.before.resolve()))
    rows = [
        row(label, run_case(tree, n, args.repeat if n < 100_000 else max(1, args.repeat // 2)))
        for n in args.integrations
        for label, tree in trees
    ]
    print_table(
        rows,
        [
            "integrations",
            "healthd",
            "series",
            "series/integration",
            "body",
            "/metrics render (median)",
            "floor: generate_latest, as many plain series",
            "update per probe run",
            "state",
            "render peak",
            "loop stall, turns: exposition on the loop",
            "loop stall, turns: MetricsEndpoint.render",
            "target < 300 ms at 100k",
        ],
    )


if __name__ == "__main__":
    main()

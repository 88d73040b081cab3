"""`/metrics` rendering cost at 1k, 10k and 100k integrations, without any network.

    python bench/metrics.py [--integrations 1000 10000 100000] [--repeat 5]

Builds the daemon's registry (its `Instruments` plus `HealthCollector` over an
`IntegrationSeries`) over realistic state (`_fixtures.realistic_views`: a provider mix,
mostly ok, a few failing or unreachable bridges, counters and the per-provider histogram
filled in), then times what `/metrics` serves (`exposition`: the per-integration text kept
rendered, joined) beside prometheus_client's `generate_latest` over the same registry (what
/metrics cost before), and checks the two bodies are identical. "update" is the cost the
runner pays per probe run to keep an integration's text rendered. The target (issue 2) is
under 100 ms at 10,000 integrations.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from _fixtures import add_health, daemon_registry, realistic_views, series_count
from _machine import facts_text, print_table
from prometheus_client import generate_latest

from healthd.metrics import Instruments, IntegrationSeries, View, exposition
from healthd.model import ProbeResult, Status

TARGET_MS_AT_10K = 100.0


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


def measure(n: int, repeat: int) -> dict[str, float]:
    views = realistic_views(n)
    series = IntegrationSeries()
    t0 = time.perf_counter()
    for v in views:
        series.update(v)
    update = (time.perf_counter() - t0) / n
    registry, instruments = daemon_registry()
    frozen = time.time()  # one "now" for both renderings, so the bodies can be compared
    add_health(registry, series, lambda: frozen)
    fill_instruments(instruments, views)
    body, fast = timed(lambda: exposition(registry), repeat)
    slow_body, slow = timed(lambda: generate_latest(registry), max(1, repeat // 2))
    series_n = series_count(body)
    return {
        "n": n,
        "series": series_n,
        "bytes": len(body),
        "identical": body == slow_body,
        "fast_ms": statistics.median(fast) * 1000,
        "fast_min_ms": min(fast) * 1000,
        "slow_ms": statistics.median(slow) * 1000,
        "update_us": update * 1e6,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--integrations", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"# /metrics render cost ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})")
    print(facts_text())
    print()
    rows = []
    for n in args.integrations:
        m = measure(n, args.repeat if n < 100_000 else max(1, args.repeat // 2))
        verdict = ""
        if n == 10_000:
            verdict = "met" if m["fast_ms"] < TARGET_MS_AT_10K else "NOT met"
        rows.append(
            [
                f"{n:,}",
                f"{m['series']:,}",
                f"{m['series'] / n:.1f}",
                f"{m['bytes'] / 1e6:.1f} MB",
                f"{m['fast_ms']:.1f} ms (min {m['fast_min_ms']:.1f})",
                f"{m['slow_ms']:.0f} ms",
                "yes" if m["identical"] else "NO",
                f"{m['update_us']:.1f} µs",
                verdict,
            ]
        )
    print_table(
        rows,
        [
            "integrations",
            "series",
            "series/integration",
            "body",
            "/metrics: exposition (median)",
            "generate_latest (median)",
            "same bytes",
            "update per probe run",
            "target < 100 ms at 10k",
        ],
    )


if __name__ == "__main__":
    main()

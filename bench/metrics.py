"""`/metrics` rendering cost at 1k, 10k and 100k integrations, without any network.

    python bench/metrics.py [--integrations 1000 10000 100000] [--repeat 5]

Builds the daemon's registry (its `Instruments` plus `HealthCollector`) over realistic
state (`_fixtures.realistic_views`: a provider mix, mostly ok, a few failing or
unreachable bridges, counters and the per-provider histogram filled in), then times
`generate_latest` on it. The time is split into building the metric families
(`collect()`) and writing the text, since the two call for different fixes. The target
(issue 2) is under 100 ms at 10,000 integrations.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from _fixtures import daemon_registry, realistic_views, series_count
from _machine import facts_text, print_table
from prometheus_client import generate_latest

from healthd.metrics import Instruments, View
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


def measure(n: int, repeat: int) -> dict[str, float]:
    views = realistic_views(n)
    registry, instruments = daemon_registry(lambda: views)
    fill_instruments(instruments, views)
    renders, collects = [], []
    body = b""
    for _ in range(repeat):
        t0 = time.perf_counter()
        families = list(registry.collect())
        collects.append(time.perf_counter() - t0)
        del families
        t0 = time.perf_counter()
        body = generate_latest(registry)
        renders.append(time.perf_counter() - t0)
    series = series_count(body)
    render = statistics.median(renders)
    return {
        "n": n,
        "series": series,
        "bytes": len(body),
        "render_ms": render * 1000,
        "render_min_ms": min(renders) * 1000,
        "collect_ms": statistics.median(collects) * 1000,
        "us_per_series": render / series * 1e6,
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
            verdict = "met" if m["render_ms"] < TARGET_MS_AT_10K else "NOT met"
        rows.append(
            [
                f"{n:,}",
                f"{m['series']:,}",
                f"{m['series'] / n:.1f}",
                f"{m['bytes'] / 1e6:.1f} MB",
                f"{m['render_ms']:.0f} ms (min {m['render_min_ms']:.0f})",
                f"{m['collect_ms']:.0f} ms",
                f"{m['us_per_series']:.1f}",
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
            "generate_latest (median)",
            "of which collect()",
            "µs/series",
            "target < 100 ms at 10k",
        ],
    )


if __name__ == "__main__":
    main()

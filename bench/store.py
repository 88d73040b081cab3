"""CPU per `record_run` of the SQLite store, with C probes waiting on it at once.

    python bench/store.py [--runs 20000] [--integrations 10000] [--concurrency 1 100 500]

The store alone (no HTTP, no runner): C coroutines each record one run at a time, as C
probes finishing together do, into a fresh database file. CPU is the process's (the event
loop and the store's thread). With group commit, runs that queue while the thread is busy
share one transaction and one thread hop, so the cost per run falls as C grows; at C=1
nothing can batch.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from _machine import facts_text, print_table

from healthd.model import IntegrationState, ProbeResult, Status
from healthd.store import SQLiteStore


async def measure(runs: int, integrations: int, concurrency: int) -> tuple[float, float]:
    """(CPU seconds per run, wall seconds) for `runs` record_run calls."""
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "healthd.db")
        await store.open()
        try:
            slots = asyncio.Semaphore(concurrency)

            async def one(n: int) -> None:
                iid = f"i{n % integrations}"
                state = IntegrationState(integration_id=iid, status=Status.OK, last_checked=now)
                result = ProbeResult.from_findings(
                    integration_id=iid, started_at=now, duration_seconds=0.1, findings=[]
                )
                async with slots:
                    await store.record_run(state, result, [])

            cpu0, wall0 = time.process_time(), time.perf_counter()
            await asyncio.gather(*(one(n) for n in range(runs)))
            return (time.process_time() - cpu0) / runs, time.perf_counter() - wall0
        finally:
            await store.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--integrations", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 100, 500])
    args = parser.parse_args(argv)
    print(f"# SQLite record_run cost ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})")
    print(facts_text())
    print()
    rows = []
    for c in args.concurrency:
        cpu, wall = asyncio.run(measure(args.runs, args.integrations, c))
        rows.append([f"{args.runs:,}", str(c), f"{cpu * 1e6:.0f} µs", f"{wall:.2f} s"])
    print_table(rows, ["runs", "concurrent callers", "CPU per record_run", "wall"])


if __name__ == "__main__":
    main()

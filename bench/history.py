"""History (issue 15): what it costs to keep, to serve, and to show.

    python bench/history.py [--store-integrations 100] [--days 8] [--api-integrations 10000]
                            [--requests 2000] [--page-integrations 1000] [--no-page]

Three parts, each printed beside a floor measured in the same run:

1. **Store bytes and CPU per run.** `--store-integrations` integrations run every 5
   minutes for `--days` days through `SQLiteStore.record_run` (100 callers at once, as a
   sweep's slot does). Bytes per bucket row and per integration come from SQLite's own
   page accounting (`dbstat`) of `history_buckets`; the floor is the values' own bytes (the
   id and six numbers), what any encoding must hold. CPU per `record_run` is measured
   beside the same store writing no bucket rows (the floor: what a run cost before).
2. **History API latency at `--api-integrations` with 90 days kept.** The SQLite file is
   filled with every integration's 90 day buckets, 7 days of hour buckets and 20
   transitions (written straight into the tables: the part measures reading them); the
   daemon (scheduler off) serves it, and bench/api.py's load generator, in its own
   process, asks one integration's history per window. The floor is `GET /api/v1/me`
   (auth and the listener, no store).
3. **Page load with `--page-integrations`** (needs /usr/bin/chromium, as the browser
   tests): the status page in headless Chromium from navigation to every card showing
   its 90-day bar, beside the floor of fetching the page's three API answers alone.

The machine is shared: other work may run on it while this runs. Figures are printed,
never asserted (tests/bench runs this on tiny sizes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from _machine import facts_text
from api import ADMIN_ENV, PASSWORD_ENV, TENANT_ENV, Scenario, fleet_config, row, run_scenario

from healthd import config, log
from healthd.api.pages import DEFAULT_LIMIT
from healthd.daemon import Daemon
from healthd.model import IntegrationState, ProbeResult, Status
from healthd.store import DAY_SPAN, HOUR_SPAN, SQLiteStore
from healthd.store import _rows as rows_codec
from healthd.store._history import BUCKET_COLUMNS

RUN_EVERY = timedelta(minutes=5)
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
CHROMIUM = Path("/usr/bin/chromium")
#: Cards on the first page of the status page: it asks for the API's default page (status.js).
PAGE_CARDS = DEFAULT_LIMIT


# -- 1. store bytes and CPU per run ----------------------------------------------------------


class _NoBuckets(SQLiteStore):
    """The floor: the same store writing each run's state, result and transitions only."""

    def _insert_runs(self, conn: sqlite3.Connection, runs: list[rows_codec.RunRows]) -> None:
        super()._insert_runs(conn, [replace(run, buckets=[]) for run in runs])


async def _fill(store: SQLiteStore, integrations: int, days: int) -> tuple[float, int]:
    """Runs every RUN_EVERY for `days` days; (CPU seconds per run, runs)."""
    start = NOW - timedelta(days=days)
    slots = asyncio.Semaphore(100)
    moments = int(timedelta(days=days) / RUN_EVERY)

    async def one(iid: str, at: datetime) -> None:
        result = ProbeResult(
            integration_id=iid,
            status=Status.OK if hash((iid, at)) % 50 else Status.FAILING,
            started_at=at,
            duration_seconds=0.05,
        )
        async with slots:
            await store.record_run(IntegrationState(integration_id=iid), result, [])

    cpu0 = time.process_time()
    for m in range(moments):
        at = start + RUN_EVERY * m
        await asyncio.gather(*(one(f"bridge-{n:05d}", at) for n in range(integrations)))
    runs = moments * integrations
    return (time.process_time() - cpu0) / runs, runs


def _table_bytes(path: Path) -> tuple[int, int, float]:
    """(bytes of history_buckets, its rows, the values' own bytes per row)."""
    with sqlite3.connect(path) as conn:
        conn.execute("VACUUM")
        size = conn.execute(
            "SELECT SUM(pgsize) FROM dbstat WHERE name = 'history_buckets'"
        ).fetchone()[0]
        count, ids = conn.execute(
            "SELECT COUNT(*), SUM(LENGTH(integration_id)) FROM history_buckets"
        ).fetchone()
    # span, start, ok, degraded, bad as the small integers SQLite stores (1-4 bytes each,
    # counted as 2), the two latencies as 8-byte floats.
    values = (ids or 0) / max(count, 1) + 5 * 2 + 2 * 8
    return int(size or 0), int(count), values


async def store_part(integrations: int, days: int, workdir: Path) -> None:
    print(f"## 1. Store: {integrations} integrations, a run every 5 min for {days} days\n")
    cpu: dict[str, float] = {}
    for name, kind in (("with buckets", SQLiteStore), ("floor: no buckets", _NoBuckets)):
        path = workdir / f"store-{kind.__name__}.db"
        store = kind(path)
        await store.open()
        try:
            cpu[name], runs = await _fill(store, integrations, days)
        finally:
            await store.close()
        if kind is SQLiteStore:
            size, count, values = _table_bytes(path)
    per_row = size / max(count, 1)
    kept_rows = 90 + 7 * 24
    print(
        f"- runs written: {runs:,}; bucket rows kept: {count:,} ({count / integrations:.0f}"
        f" per integration after {days} days)"
    )
    print(f"- bytes per bucket row: {per_row:.1f} (floor, the values alone: {values:.1f})")
    print(
        f"- bytes per integration per day of history: {25 * per_row:.0f} (24 hour rows and"
        f" one day row; floor {25 * values:.0f})"
    )
    print(
        f"- at 90 days kept (90 day rows, 168 hour rows): {kept_rows * per_row / 1024:.1f} KiB"
        f" per integration, {kept_rows * per_row * 10_000 / 2**20:.0f} MiB for 10,000"
    )
    extra = (cpu["with buckets"] - cpu["floor: no buckets"]) * 1e6
    print(
        f"- CPU per record_run: {cpu['with buckets'] * 1e6:.1f} µs with buckets,"
        f" {cpu['floor: no buckets'] * 1e6:.1f} µs without (floor): {extra:+.1f} µs per run\n"
    )


# -- 2. the history API at scale -----------------------------------------------------------


def _bucket_rows(iid: str) -> Iterator[tuple[Any, ...]]:
    today = int(NOW.timestamp()) // DAY_SPAN * DAY_SPAN
    hour = int(NOW.timestamp()) // HOUR_SPAN * HOUR_SPAN
    for n in range(90):
        yield (DAY_SPAN, iid, today - n * DAY_SPAN, 280, 4, 4, 14.4, 0.2)
    for n in range(7 * 24):
        yield (HOUR_SPAN, iid, hour - n * HOUR_SPAN, 11, 0, 1, 0.6, 0.1)


def _transition_rows(iid: str) -> Iterator[tuple[str, str, str, str, str]]:
    for n in range(20):
        at = rows_codec.iso(NOW - timedelta(hours=7 * n))
        kind, old, new = ("failed", "ok", "failing") if n % 2 else ("recovered", "failing", "ok")
        yield (iid, kind, at, old, new)


async def prepare_database(path: Path, ids: list[str]) -> None:
    """The schema (by opening the store once), then 90 days of history for every id."""
    store = SQLiteStore(path)
    await store.open()
    await store.close()
    columns = ", ".join(BUCKET_COLUMNS)
    with sqlite3.connect(path) as conn:
        conn.executemany(
            f"INSERT INTO history_buckets ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (r for iid in ids for r in _bucket_rows(iid)),
        )
        conn.executemany(
            "INSERT INTO transitions (integration_id, kind, at, from_status, to_status)"
            " VALUES (?, ?, ?, ?, ?)",
            (r for iid in ids for r in _transition_rows(iid)),
        )


def _daemon_config(integrations: int, store: Path) -> config.Config:
    doc = fleet_config("http://127.0.0.1:9", integrations, 100, store.parent)
    doc["store"] = f"sqlite:///{store}"
    return config.loads(yaml.safe_dump(doc), source="bench")


HEADER = (
    f"{'scenario':<34} {'reqs':>6} {'conc':>5} {'p50 ms':>9} {'p99 ms':>9} "
    f"{'req/s':>8} {'errors':>6}"
)


async def api_part(integrations: int, requests: int, workdir: Path) -> None:
    print(f"## 2. History API: {integrations:,} integrations, 90 days kept\n")
    path = workdir / "api.db"
    cfg = _daemon_config(integrations, path)
    t0 = time.perf_counter()
    await prepare_database(path, [i.id for i in cfg.integrations])
    print(f"(filled in {time.perf_counter() - t0:.0f} s: {path.stat().st_size / 2**20:.0f} MiB)")
    middle = cfg.integrations[integrations // 2].id
    # One request at a time: the latency a person's request sees. The last line, four at
    # once, is throughput (its latency includes waiting behind the other three).
    n = requests
    scenarios = [Scenario("floor: GET /api/v1/me", "GET", "/api/v1/me", ADMIN_ENV, n, 1, 15)]
    for window in ("24h", "7d", "30d", "90d"):
        path_ = f"/api/v1/integrations/{middle}/history?window={window}"
        scenarios.append(Scenario(f"history window={window}", "GET", path_, ADMIN_ENV, n, 1, 15))
    path_ = f"/api/v1/integrations/{middle}/history?window=7d"
    scenarios.append(Scenario("history window=7d, 4 at once", "GET", path_, ADMIN_ENV, n, 4, 15))
    scenarios.append(
        Scenario(
            "incident history (admin)", "GET", "/api/v1/incidents/history", ADMIN_ENV, n, 1, 10
        )
    )
    async with Daemon(cfg, schedule=False) as daemon:
        print(HEADER)
        for scenario in scenarios:
            print(row(scenario, await run_scenario(daemon.url, scenario)), flush=True)
    print()


# -- 3. the page with many integrations ----------------------------------------------------


async def page_part(integrations: int, workdir: Path) -> None:
    print(f"## 3. Status page: {integrations:,} integrations, 90 days kept\n")
    from playwright.async_api import async_playwright

    path = workdir / "page.db"
    cfg = _daemon_config(integrations, path)
    await prepare_database(path, [i.id for i in cfg.integrations])
    token = os.environ[ADMIN_ENV]
    async with Daemon(cfg, schedule=False) as daemon, async_playwright() as pw:
        floors = [await _fetch_answers(daemon.url, token) for _ in range(3)]
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox"], headless=True
        )
        try:
            loads = [await _page_load(browser, daemon.url, token, integrations) for _ in range(3)]
        finally:
            await browser.close()
    print(
        f"- page load to every card of its first page ({min(integrations, PAGE_CARDS)} cards)"
        f" with its bar, median of 3: {statistics.median(loads):.2f} s"
        f" (runs: {', '.join(f'{s:.2f}' for s in loads)})"
    )
    print(
        f"- floor, the page's three API answers fetched alone: {statistics.median(floors):.2f} s\n"
    )


async def _fetch_answers(url: str, token: str) -> float:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        t0 = time.perf_counter()
        for path in ("/api/v1/integrations", "/api/v1/me", "/api/v1/history"):
            async with session.get(url + path) as answer:
                await answer.read()
        return time.perf_counter() - t0


async def _page_load(browser: Any, url: str, token: str, integrations: int) -> float:
    context = await browser.new_context()
    await context.add_init_script(f"sessionStorage.setItem('healthd.token', {token!r})")
    page = await context.new_page()
    t0 = time.perf_counter()
    await page.goto(url)
    # A locator, not wait_for_function: the page's CSP forbids evaluating strings.
    # The page shows the list a page at a time (issue 11): every card of its first page.
    cards = min(integrations, PAGE_CARDS)
    await page.locator("ol.uptime-bar").nth(cards - 1).wait_for(timeout=120_000)
    took = time.perf_counter() - t0
    await context.close()
    return took


async def bench(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="healthd-bench-history-") as tmp:
        workdir = Path(tmp)
        await store_part(args.store_integrations, args.days, workdir)
        await api_part(args.api_integrations, args.requests, workdir)
        if args.no_page:
            return
        if not args.chromium:
            print(f"## 3. skipped: {CHROMIUM} is missing (scripts/install-browser-deps)")
            return
        await page_part(args.page_integrations, workdir)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store-integrations", type=int, default=100)
    parser.add_argument("--days", type=int, default=8)
    parser.add_argument("--api-integrations", type=int, default=10_000)
    parser.add_argument("--page-integrations", type=int, default=1_000)
    parser.add_argument("--requests", type=int, default=2000, help="per API scenario")
    parser.add_argument("--no-page", action="store_true")
    args = parser.parse_args()
    args.chromium = CHROMIUM.exists()
    os.environ.update(
        {
            PASSWORD_ENV: "unused-" + secrets.token_urlsafe(8),
            ADMIN_ENV: "bench-admin-" + secrets.token_urlsafe(18),
            TENANT_ENV: "bench-tenant-" + secrets.token_urlsafe(18),
        }
    )
    print(f"# History (issue 15) ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})")
    print(facts_text())
    print()
    with tempfile.NamedTemporaryFile("w", suffix=".log") as logfile:
        log.configure(level="warning", stream=logfile)
        asyncio.run(bench(args))


if __name__ == "__main__":
    main()

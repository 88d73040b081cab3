"""Status API latency and throughput at 10,000 integrations, from a load generator on loopback.

    python bench/api.py [--integrations 10000] [--tenants 100]

Three processes on 127.0.0.1: the provider simulator (`python -m healthd.sim`), healthd
(this process: the daemon with its scheduler off), and the load generator (this script
again with `--loadgen`, an aiohttp client). The fleet is iMessage bridges, each its own
simulator target, spread evenly over the tenants. One sweep fills the state; then each
scenario sends a bounded number of requests (and stops early at its time limit):

- `GET /api/v1/integrations` with the admin token: its first page (100 integrations since
  issue 11's pagination; the whole fleet in one answer before);
- `GET /api/v1/integrations` with one tenant's token: that tenant's share;
- `POST /api/v1/tenants/{tenant}/check`: a live check of every integration of one tenant,
  one request at a time, so each answer is a fresh run, not a shared one.

healthd runs as `healthd run` runs it: on `healthd.loop` (uvloop where installed), with
the start-up heap frozen (`healthd.gctune`) once the daemon has started.

Prints one table: requests, p50, p99, requests per second. Figures depend on the machine;
the simulator answers at once (no injected latency), so the live check measures healthd
and the loopback, not a provider's round trip.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from _machine import stop

from healthd import config, log, loop
from healthd.daemon import Daemon
from healthd.gctune import settle_startup_heap
from healthd.sim.bridge import DEFAULT_PASSWORD as SIM_PASSWORD
from healthd.sim.fixtures import integration_entry

PASSWORD_ENV = "HEALTHD_BENCH_BRIDGE_PASSWORD"
ADMIN_ENV = "HEALTHD_BENCH_ADMIN_TOKEN"
TENANT_ENV = "HEALTHD_BENCH_TENANT_TOKEN"
START_TIMEOUT = 30.0


@dataclass(frozen=True)
class Scenario:
    name: str
    method: str
    path: str
    token_env: str
    requests: int
    concurrency: int
    seconds: float


def tenant_name(n: int) -> str:
    return f"t{n:03d}"


def fleet_config(sim_url: str, integrations: int, tenants: int, workdir: Path) -> dict[str, Any]:
    fleet = []
    for n in range(integrations):
        tenant = tenant_name(n % tenants)
        name = f"{tenant}-{n:05d}"
        fleet.append(
            integration_entry(
                "imessage_bridge",
                sim_url,
                name,
                id=f"bridge-{name}",
                tenant=tenant,
                credentials={"password": f"env:{PASSWORD_ENV}"},
            )
        )
    return {
        "listen": "127.0.0.1:0",
        "store": "memory:",
        "defaults": {"interval": "5m", "timeout": "10s", "jitter": "0s", "concurrency": 200},
        "api": {
            "check_rate_limit": 1_000_000,
            "tokens": [
                {"name": "bench-admin", "role": "admin", "token": f"env:{ADMIN_ENV}"},
                {"name": "bench-tenant", "tenant": tenant_name(0), "token": f"env:{TENANT_ENV}"},
            ],
        },
        "integrations": fleet,
    }


# -- the load generator (a separate process) ------------------------------------------------


async def load(
    url: str, method: str, token: str, requests: int, concurrency: int, seconds: float
) -> dict[str, Any]:
    """Send up to `requests` requests with `concurrency` in flight; stop at `seconds`."""
    latencies: list[float] = []
    errors = 0
    next_index = 0
    deadline = time.perf_counter() + seconds
    headers = {"Authorization": f"Bearer {token}"}
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            nonlocal next_index, errors
            while next_index < requests and time.perf_counter() < deadline:
                next_index += 1
                t0 = time.perf_counter()
                async with session.request(method, url, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"latencies": latencies, "errors": errors, "elapsed": elapsed}


def loadgen_main(args: argparse.Namespace) -> None:
    token = os.environ[args.token_env]
    result = asyncio.run(
        load(args.url, args.method, token, args.requests, args.concurrency, args.seconds)
    )
    sys.stdout.write(json.dumps(result) + "\n")


# -- the bench ------------------------------------------------------------------------------


def start_simulator() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "healthd.sim"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise SystemExit(f"the simulator did not start (exit {proc.wait(10)})")
    return proc, json.loads(line)["http_url"]


async def run_scenario(daemon_url: str, scenario: Scenario) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--loadgen",
        "--url",
        daemon_url + scenario.path,
        "--method",
        scenario.method,
        "--token-env",
        scenario.token_env,
        "--requests",
        str(scenario.requests),
        "--concurrency",
        str(scenario.concurrency),
        "--seconds",
        str(scenario.seconds),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(scenario.seconds + 90):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise SystemExit(f"load generator for {scenario.name} exited {proc.returncode}")
    result: dict[str, Any] = json.loads(out)
    return result


def row(scenario: Scenario, result: dict[str, Any]) -> str:
    lat = sorted(result["latencies"])
    if len(lat) >= 2:
        p50 = statistics.median(lat)
        p99 = statistics.quantiles(lat, n=100, method="inclusive")[98]
    else:
        p50 = p99 = lat[0] if lat else float("nan")
    rps = len(lat) / result["elapsed"] if result["elapsed"] else float("nan")
    return (
        f"{scenario.name:<34} {len(lat):>6} {scenario.concurrency:>5} {p50 * 1000:>9.1f} "
        f"{p99 * 1000:>9.1f} {rps:>8.1f} {result['errors']:>6}"
    )


async def bench(args: argparse.Namespace, sim_url: str, workdir: Path) -> None:
    doc = fleet_config(sim_url, args.integrations, args.tenants, workdir)
    cfg = config.loads(yaml.safe_dump(doc), source="bench")
    per_tenant = args.integrations // args.tenants
    scenarios = [
        Scenario(
            f"list first page (of {args.integrations}, admin)",
            "GET",
            "/api/v1/integrations",
            ADMIN_ENV,
            requests=60,
            concurrency=4,
            seconds=30,
        ),
        Scenario(
            f"list one tenant ({per_tenant}, tenant)",
            "GET",
            "/api/v1/integrations",
            TENANT_ENV,
            requests=3000,
            concurrency=16,
            seconds=20,
        ),
        Scenario(
            f"live tenant check ({per_tenant} probes)",
            "POST",
            f"/api/v1/tenants/{tenant_name(0)}/check",
            TENANT_ENV,
            requests=40,
            concurrency=1,
            seconds=25,
        ),
    ]
    async with Daemon(cfg, schedule=False) as daemon:
        settle_startup_heap()  # as `healthd run` does once started
        t0 = time.perf_counter()
        await daemon.runner.run_many(list(daemon.runner.integrations))
        sweep = time.perf_counter() - t0
        states = [s.status.value for s in daemon.runner.states.values()]
        print(
            f"healthd {daemon.url}: {len(states)} integrations, {args.tenants} tenants; "
            f"one sweep took {sweep:.1f} s ({states.count('ok')} ok)"
        )
        print(
            f"{'scenario':<34} {'reqs':>6} {'conc':>5} {'p50 ms':>9} {'p99 ms':>9} "
            f"{'req/s':>8} {'errors':>6}"
        )
        for scenario in scenarios:
            print(row(scenario, await run_scenario(daemon.url, scenario)), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--integrations", type=int, default=10_000)
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--loadgen", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--token-env", help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loadgen:
        loadgen_main(args)
        return
    os.environ.update(
        {
            PASSWORD_ENV: SIM_PASSWORD,
            ADMIN_ENV: "bench-admin-" + secrets.token_urlsafe(18),
            TENANT_ENV: "bench-tenant-" + secrets.token_urlsafe(18),
        }
    )
    sim, sim_url = start_simulator()
    try:
        with tempfile.TemporaryDirectory(prefix="healthd-bench-") as tmp:
            workdir = Path(tmp)
            with (workdir / "healthd.log").open("w") as logfile:
                log.configure(level="warning", stream=logfile)
                loop.run(bench(args, sim_url, workdir))
    finally:
        stop(sim)


if __name__ == "__main__":
    main()

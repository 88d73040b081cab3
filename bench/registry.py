"""The registry API at 10,000 integrations: PUT to first probe, list pages, one workspace.

    python bench/registry.py [--integrations 10000] [--tenants 100] [--no-probe]

Two processes on 127.0.0.1: the provider simulator (`python -m healthd.sim`) and healthd
in this process (scheduling, an SQLite store in a temporary folder, a one-hour interval so
that what is measured is the API and the first probe, not the sweeps), driven by an
aiohttp client on the same loop. Prints:

- registering the fleet through `PUT /api/v1/tenants/{tenant}/integrations` (wall time,
  the process's CPU time, client included: steadier than wall time on a shared host;
  memory per integration) and starting again with it stored (start-up time);
- PUT to first probe: from sending the PUT of a new integration until its first run has
  ended, p50/p99; beside it, the floor: the same PUT again (unchanged: nothing probed) and
  a live check of an existing integration (one probe through the API);
- a page of 100 of the admin list, walked by cursor, p50/p99, beside `/healthz` (floor);
- one workspace's page (its 100 and the shared bridge) with its workspace JWT;
- a filtered admin page that few or none match (`status=failing`), which reads the whole
  fleet to fill itself: the worst page of the list.

`--no-probe` runs healthd without its scheduler: nothing is probed (a registration is not
probed at once either), so registering measures the registry alone (validating, sealing,
storing, indexing) and memory per integration leaves out results; PUT to first probe is
not measured then. It is how 100,000 registrations fit in minutes on a shared host.

Latencies include the client, which runs on healthd's own loop (the floor pays it too);
list answers are read as text, not parsed, so the client's JSON decoding is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import yaml
from _machine import facts_text, stop
from api import start_simulator

from healthd import config, log
from healthd.daemon import Daemon
from healthd.model import RunChange
from healthd.sim.fixtures import integration_entry
from healthd.vault import new_key

ADMIN = "bench-admin-token-0123456789abcdef"
JWT_SECRET = "bench-jwt-shared-secret-of-32-bytes-at-least"
SAMPLES = 200
NEXT_CURSOR = re.compile(r'"next_cursor": "([^"]+)"')


def bench_config(workdir: Path) -> dict[str, Any]:
    os.environ["HEALTHD_BENCH_ADMIN"] = ADMIN
    os.environ["HEALTHD_BENCH_KEY"] = new_key()
    os.environ["HEALTHD_BENCH_JWT"] = JWT_SECRET
    return {
        "listen": "127.0.0.1:0",
        "store": f"sqlite:///{workdir / 'healthd.db'}",
        "defaults": {"interval": "1h", "timeout": "10s", "jitter": "0s", "concurrency": 200},
        "registry": {"keys": ["env:HEALTHD_BENCH_KEY"]},
        "api": {
            "check_rate_limit": 1_000_000,
            "tokens": [{"name": "bench", "role": "admin", "token": "env:HEALTHD_BENCH_ADMIN"}],
            "jwt": {"algorithm": "HS256", "key": "env:HEALTHD_BENCH_JWT", "audience": "healthd"},
        },
        "integrations": [],
    }


def item(sim_url: str, tenant: str, n: int) -> dict[str, Any]:
    entry = integration_entry("imessage_bridge", sim_url, f"{tenant}-{n}", id="-", tenant=tenant)
    return entry | {"id": f"crm-{tenant}-{n:05d}"}


def quantiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = statistics.quantiles(ordered, n=100, method="inclusive")[98]
    return f"p50 {statistics.median(ordered) * 1000:7.2f} ms  p99 {p99 * 1000:7.2f} ms"


def rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def timed(call: Callable[[], Awaitable[object]], samples: int) -> list[float]:
    out = []
    for _ in range(samples):
        t0 = time.perf_counter()
        await call()
        out.append(time.perf_counter() - t0)
    return out


class Client:
    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self._session = session
        self._url = url

    async def __call__(
        self, method: str, path: str, payload: Any = None, token: str = ADMIN, parse: bool = True
    ) -> Any:
        data = None if payload is None else json.dumps(payload)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        async with self._session.request(method, self._url + path, data=data, headers=headers) as r:
            text = await r.text()
            if r.status >= 400:
                raise SystemExit(f"{method} {path}: {r.status} {text[:300]}")
            # A page's JSON costs the client more to parse than healthd to make (5 ms at
            # 100 integrations): the list scenarios read the text, not the document.
            return json.loads(text) if text and parse else text


class Runs:
    """Tells when integrations' runs end: the engine's `observe`, wrapped (bench only)."""

    def __init__(self, d: Daemon) -> None:
        self._observe = d.engine.observe
        self._waiting: dict[str, asyncio.Event] = {}
        self.count = 0
        self.enough = asyncio.Event()
        self.target = 0
        d.engine.observe = self._seen  # type: ignore[method-assign]

    def _seen(self, change: RunChange) -> None:
        self._observe(change)
        self.count += 1
        if self.count >= self.target:
            self.enough.set()
        event = self._waiting.pop(change.after.integration_id, None)
        if event is not None:
            event.set()

    def expect(self, integration_id: str) -> asyncio.Event:
        self._waiting[integration_id] = event = asyncio.Event()
        return event


async def first_probes(runs: Runs, api: Client, sim_url: str, samples: int) -> list[float]:
    """PUT of a new integration until its first run has ended, `samples` times."""
    out = []
    for n in range(samples):
        body = item(sim_url, "bench", n)
        ended = runs.expect(body["id"])
        t0 = time.perf_counter()
        await api("PUT", f"/api/v1/integrations/{body['id']}", body)
        await asyncio.wait_for(ended.wait(), 10)
        out.append(time.perf_counter() - t0)
    return out


async def bench(args: argparse.Namespace, sim_url: str, workdir: Path) -> None:
    cfg = config.loads(yaml.safe_dump(bench_config(workdir)), source="bench")
    tenants = [f"t{n:03d}" for n in range(args.tenants)]
    per_tenant = args.integrations // args.tenants
    async with aiohttp.ClientSession() as session:
        rss0 = rss_bytes()
        async with Daemon(cfg, schedule=not args.no_probe) as d:
            api = Client(session, d.url)
            runs = Runs(d)
            runs.target = args.integrations
            if args.no_probe:
                runs.enough.set()
            t0, cpu0 = time.perf_counter(), time.process_time()
            for tenant in tenants:
                items = [item(sim_url, tenant, n) for n in range(per_tenant)]
                await api("PUT", f"/api/v1/tenants/{tenant}/integrations", {"integrations": items})
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            await asyncio.wait_for(runs.enough.wait(), 3600)
            ended = time.perf_counter() - t0
            per = (rss_bytes() - rss0) / args.integrations
            print(
                f"registered {args.integrations} integrations ({args.tenants} tenant PUTs):"
                f" {wall:.1f} s wall, {args.integrations / wall:.0f}/s, {cpu:.1f} s CPU;"
                f" {per / 1024:.1f} KiB RSS per integration"
                + (" (none probed)" if args.no_probe else f" (all probed once by {ended:.1f} s)")
            )
            again = item(sim_url, "bench", 0)
            path = f"/api/v1/integrations/{again['id']}"
            if not args.no_probe:
                put_probe = await first_probes(runs, api, sim_url, args.samples)
                unchanged = await timed(lambda: api("PUT", path, again), args.samples)
                live = await timed(lambda: api("POST", f"{path}/check"), args.samples)
                print(f"PUT to first probe              {quantiles(put_probe)}")
                print(f"  floor: PUT unchanged          {quantiles(unchanged)}")
                print(f"  floor: one live check         {quantiles(live)}")

            cursor: list[str | None] = [None]

            async def next_page() -> None:
                query = "?limit=100" + (f"&cursor={cursor[0]}" if cursor[0] else "")
                text = await api("GET", f"/api/v1/integrations{query}", parse=False)
                found = NEXT_CURSOR.search(text)
                cursor[0] = found.group(1) if found else None

            pages = await timed(next_page, args.samples)
            healthz = await timed(lambda: api("GET", "/healthz"), args.samples)
            token = jwt.encode(
                {"tenant": tenants[0], "aud": "healthd", "exp": int(time.time()) + 3600},
                JWT_SECRET,
                algorithm="HS256",
            )
            workspace = await timed(
                lambda: api("GET", "/api/v1/integrations", token=token, parse=False), args.samples
            )
            failing = await timed(
                lambda: api("GET", "/api/v1/integrations?status=failing", parse=False),
                max(10, args.samples // 10),
            )
            print(f"list page of 100 at {len(d.runner.integrations)}  {quantiles(pages)}")
            print(f"one workspace's page ({per_tenant}) {quantiles(workspace)}")
            print(f"status=failing page (few match) {quantiles(failing)}")
            print(f"  floor: /healthz               {quantiles(healthz)}")
        t0 = time.perf_counter()
        async with Daemon(cfg, schedule=False) as d:
            started = time.perf_counter() - t0
            print(
                f"start-up with {len(d.fleet.entries)} registered (opened, validated): "
                f"{started:.2f} s"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--integrations", type=int, default=10_000)
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--samples", type=int, default=SAMPLES, help="requests per figure")
    parser.add_argument(
        "--no-probe", action="store_true", help="no scheduler: the registry's own cost"
    )
    args = parser.parse_args()
    print(facts_text())
    log.configure([], level="error")
    sim, sim_url = start_simulator()
    try:
        with tempfile.TemporaryDirectory() as workdir:
            asyncio.run(bench(args, sim_url, Path(workdir)))
    finally:
        stop(sim)


if __name__ == "__main__":
    main()

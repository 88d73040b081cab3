"""The transport's own floor: the sweep's requests made by plain aiohttp, with no healthd.

    python bench/transport.py [--integrations 10000] [--concurrency 100 500] [--latency 0.05]

`bench/sweep.py` measures healthd; this measures what any aiohttp client on this machine
can do against the same simulator, so a sweep figure can be read against it. Each case
fetches every bridge's `server/info` (what a bridge probe asks when its backlog is cached)
once to warm the pool, then once timed, through `healthd.http.make_session(C)` and a
semaphore of C, on `healthd.loop`, in a fresh process: wall time against the ideal N x
latency / C, and the process CPU per request. If plain aiohttp cannot sweep within a
target on this machine, healthd on top of it cannot either.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Sequence

from _fixtures import SIM_BRIDGE_PASSWORD
from _machine import print_header, print_table, run_worker
from sweep import simulator

from healthd import loop
from healthd.http import make_session


class Bridges:
    """N simulated bridges' `server/info` URLs, fetched by plain aiohttp at most
    `concurrency` at a time through `make_session(concurrency)`."""

    def __init__(self, sim_url: str, n: int, concurrency: int) -> None:
        self.session = make_session(concurrency)
        self.slots = asyncio.Semaphore(concurrency)
        self.urls = [f"{sim_url}/bridges/b{i}/api/v1/server/info" for i in range(n)]
        self.auth = {"password": SIM_BRIDGE_PASSWORD}

    async def get(self, url: str) -> bool:
        """Whether `url` answered 200, its body read."""
        async with self.slots, self.session.get(url, params=self.auth) as answer:
            await answer.read()
            return answer.status == 200


async def sweep(sim_url: str, n: int, concurrency: int) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, answers with status 200) of the timed pass."""
    bridges = Bridges(sim_url, n, concurrency)
    get, urls, session = bridges.get, bridges.urls, bridges.session
    try:
        await asyncio.gather(*(get(u) for u in urls))
        cpu0, t0 = time.process_time(), time.perf_counter()
        ok = await asyncio.gather(*(get(u) for u in urls))
        return time.perf_counter() - t0, time.process_time() - cpu0, sum(ok)
    finally:
        await session.close()


async def paced(
    sim_url: str, n: int, concurrency: int, rate: float, seconds: int
) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, answers with status 200) of `rate` requests a second for
    `seconds`, started in one-second slots as healthd's scheduler starts a slot's probes.

    A sweep keeps `concurrency` requests in flight back to back, so each wake-up of the
    loop serves many answers; a daemon's requests come a second's share at a time, and
    plain aiohttp spread the same way pays for more wake-ups per request. This is the
    floor for `healthd run`'s figure (bench/daemon.py); the sweep's is for bench/sweep.py.
    """
    bridges = Bridges(sim_url, n, concurrency)
    get, urls, session = bridges.get, bridges.urls, bridges.session
    try:
        await asyncio.gather(*(get(u) for u in urls[: 2 * concurrency]))  # the pool, warm
        clock = asyncio.get_running_loop()
        started: list[asyncio.Task[bool]] = []
        cpu0, t0 = time.process_time(), clock.time()
        for second in range(seconds):
            await asyncio.sleep(max(0.0, t0 + second - clock.time()))
            due = round(rate * (second + 1)) - len(started)
            started += [asyncio.create_task(get(urls[(len(started) + i) % n])) for i in range(due)]
        ok = await asyncio.gather(*started)
        return clock.time() - t0, time.process_time() - cpu0, sum(ok)
    finally:
        await session.close()


def worker(spec: str) -> None:
    args = json.loads(spec)
    if "rate" in args:
        work = paced(args["sim_url"], args["n"], args["concurrency"], args["rate"], args["seconds"])
    else:
        work = sweep(args["sim_url"], args["n"], args["concurrency"])
    wall, cpu, ok = loop.run(work)
    print(json.dumps({"wall": wall, "cpu": cpu, "ok": ok}))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--integrations", type=int, nargs="+", default=[10_000])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker)
        return
    print_header(
        "plain aiohttp against the simulator",
        f"simulator: separate process, {args.latency * 1000:g} ms latency per request",
    )
    rows = []
    with simulator(args.latency) as (sim_url, _pid):
        for n in args.integrations:
            for c in args.concurrency:
                spec = {"sim_url": sim_url, "n": n, "concurrency": c}
                r = run_worker(__file__, json.dumps(spec), timeout=600)
                ideal = n * args.latency / c
                rows.append(
                    [
                        f"{n:,}",
                        str(c),
                        f"{int(r['ok'])}/{n}",
                        f"{ideal:.2f} s",
                        f"{r['wall']:.2f} s",
                        f"{r['wall'] / ideal:.2f}x",
                        f"{r['cpu'] / n * 1000:.3f}",
                    ]
                )
    print_table(rows, ["N", "C", "ok", "ideal", "sweep", "sweep/ideal", "CPU ms/request"])


if __name__ == "__main__":
    main()

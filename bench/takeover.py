"""How long a SIGKILLed replica's integrations wait for the survivors: real processes.

    python bench/takeover.py [--bridges 30] [--interval 5] [--lease 3 15]

Three `healthd run` processes on one throwaway PostgreSQL (the tests' `tests._postgres`),
N bridges against the simulator (its own process), probes every `--interval` seconds. Once
every replica sees the three, one that does not hold the alert lease is SIGKILLed; the
simulator's per-bridge probe counts (`info_requests`, polled every 50 ms) then tell, for
each of the killed replica's bridges, how long after the kill a survivor probed it.

The design bound is one interval plus the member lease times 4/3 (healthd.cluster.shares:
a heartbeat older than the lease, seen at the survivors' next refresh, lease / 3 apart).
The floor, measured in the same run, is the longest gap between two probes of a bridge
whose prober lived: what any bridge waits anyway, one interval plus the scheduler's slack.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml
from _machine import print_header, print_table
from daemon import PASSWORD_ENV, Running
from sweep import simulator

from healthd.cluster.shares import owner
from healthd.sim.bridge import DEFAULT_PASSWORD
from healthd.sim.client import SimClient
from healthd.sim.fixtures import integration_entry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' server helper
from tests._postgres import PostgresServer, start_server  # noqa: E402

REPLICAS = 3
POLL = 0.05  # seconds between two reads of the simulator's counts
BOUND = 300.0  # seconds: any wait here gives up after this


def config(sim_url: str, store: str, bridges: int, interval: int) -> dict[str, object]:
    return {
        "listen": "127.0.0.1:0",
        "store": store,
        "defaults": {"interval": f"{interval}s", "timeout": "2s", "jitter": "0s"},
        "integrations": [
            integration_entry(
                "imessage_bridge",
                sim_url,
                f"b{n}",
                id=f"bridge-{n}",
                tenant="platform",
                credentials={"password": f"env:{PASSWORD_ENV}"},
            )
            for n in range(bridges)
        ],
    }


def gauge(url: str, name: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split(" ")[1])
    return 0.0


def wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {what} within {BOUND:.0f} s")
        time.sleep(POLL)


def measure(
    server: PostgresServer, sim_url: str, bridges: int, interval: int, lease: float
) -> list[str]:
    sim = SimClient(sim_url)
    sim.reset()
    store = f"{server.dsn(server.create_database())}?lease={lease:g}s"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "healthd.yaml"
        path.write_text(yaml.safe_dump(config(sim_url, store, bridges, interval)))
        # Started one after the other: they join as members 1, 2, 3 of the new database.
        replicas = [Running(path, DEFAULT_PASSWORD) for _ in range(REPLICAS)]
        try:
            for r in replicas:
                wait_for(lambda r=r: gauge(r.url, "healthd_cluster_members") == 3, "3 members")
            time.sleep(interval)  # a whole interval of the three sharing: the steady state
            members = list(range(1, REPLICAS + 1))
            victim = next(
                m
                for m, r in zip(members, replicas, strict=True)
                if gauge(r.url, "healthd_cluster_alert_lease_held") == 0
            )
            theirs = {f"b{n}" for n in range(bridges) if owner(f"bridge-{n}", members) == victim}
            before = counts(sim)
            replicas[victim - 1].kill()
            killed = time.monotonic()
            taken: dict[str, float] = {}
            last_seen = {t: killed for t in before}
            longest_gap = 0.0
            while len(taken) < len(theirs):
                if time.monotonic() - killed > BOUND:
                    raise RuntimeError(f"{len(theirs) - len(taken)} bridges never probed again")
                time.sleep(POLL)
                now, seen = time.monotonic(), counts(sim)
                for target, count in seen.items():
                    if count == before.get(target):
                        continue
                    before[target] = count
                    if target in theirs:
                        taken.setdefault(target, now - killed)
                    else:
                        longest_gap = max(longest_gap, now - last_seen[target])
                        last_seen[target] = now
        finally:
            for r in replicas:
                if r.proc.poll() is None:
                    r.stop()
    waits = sorted(taken.values())
    return [
        f"{lease:g} s",
        f"{interval} s",
        f"{len(theirs)} of {bridges}",
        f"{statistics.median(waits):.1f} s",
        f"{waits[-1]:.1f} s",
        f"{interval + lease * 4 / 3:.1f} s",
        f"{longest_gap:.1f} s",
    ]


def counts(sim: SimClient) -> dict[str, int]:
    found: dict[str, int] = sim.describe()["providers"]["imessage_bridge"]["info_requests"]
    return found


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--bridges", type=int, default=30)
    parser.add_argument("--interval", type=int, default=5, help="seconds")
    parser.add_argument("--lease", type=float, nargs="+", default=[3.0, 15.0], help="seconds")
    args = parser.parse_args(argv)
    print_header(
        "Takeover of a SIGKILLed replica's share (issue 13)",
        f"{REPLICAS} healthd run processes, PostgreSQL (fsync off), simulator in its own"
        " process, no latency",
    )
    server = start_server()
    rows = []
    try:
        with simulator(0.0) as (sim_url, _pid):
            for lease in args.lease:
                rows.append(measure(server, sim_url, args.bridges, args.interval, lease))
    finally:
        server.destroy()
    print_table(
        rows,
        [
            "lease",
            "interval",
            "killed replica's bridges",
            "median wait",
            "longest wait",
            "design bound (interval + 4/3 lease)",
            "floor: longest gap of a live prober's bridge",
        ],
    )


if __name__ == "__main__":
    main()

"""What sharing a fleet of 100,000 integrations between 3 replicas costs, against one replica.

    python bench/replicas.py [--integrations 100000] [--replicas 3]

A throwaway PostgreSQL (the tests' `tests._postgres`), the real PostgresStore, Shares and
Runner code paths, no HTTP: what the cluster adds to each replica, per interval.

- `record_run`: CPU per run through the store's group commit (500 concurrent writers), on
  one replica's share and on the whole fleet written by one replica;
- `assignment`: rendezvous hashing of the fleet over the live members (each membership
  change, on every replica);
- `reload others`: reading the other replicas' states and results back (once per member
  lease, on every replica): the price of "any replica answers for any integration"; every
  row (as before), the others' rows, and the others' rows written since the previous read
  (`load_runs(changed=True)`, as the replicas read back now);
- `duplicates` and `takeover`: after one replica's heartbeat goes stale, how many
  integrations two replicas both claim (0 expected: every replica computes the same owner)
  and how long until the survivors' shares cover the fleet again (the member lease plus
  one refresh, by construction; measured here with a 2 s lease).

Statements per second are counted from the server (`pg_stat_database.xact_commit`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from _machine import facts_text, print_table

from healthd.cluster.shares import Shares, owner
from healthd.model import IntegrationState, ProbeResult, Status
from healthd.store import PostgresStore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' server helper
from tests._postgres import PostgresServer, start_server  # noqa: E402

LEASE = 2.0


async def write_runs(store: PostgresStore, ids: Sequence[str]) -> float:
    """CPU µs per record_run for one run of each of `ids`, 500 at a time."""
    now = datetime.now(UTC)
    slots = asyncio.Semaphore(500)

    async def one(iid: str) -> None:
        state = IntegrationState(integration_id=iid, status=Status.OK, last_checked=now)
        result = ProbeResult.from_findings(
            integration_id=iid, started_at=now, duration_seconds=0.1, findings=[]
        )
        async with slots:
            await store.record_run(state, result, [])

    cpu = time.process_time()
    await asyncio.gather(*(one(i) for i in ids))
    return (time.process_time() - cpu) / len(ids) * 1e6


def commits(server: PostgresServer, database: str) -> int:
    text = server.psql(f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{database}'")
    return int(text.strip())


async def measure(server: PostgresServer, fleet: int, replicas: int) -> list[list[str]]:
    database = server.create_database()
    url = server.dsn(database)
    ids = [f"i{n:06d}" for n in range(fleet)]
    stores = [PostgresStore(url, member_lease=LEASE) for _ in range(replicas)]
    for store in stores:
        await store.open()
    rows: list[list[str]] = []
    try:

        async def no_load(_ids: list[str]) -> None:
            return None

        shares = [Shares(store, lambda: ids, no_load) for store in stores]
        cpu = time.process_time()
        for share in shares:
            await share.refresh()
        assign_ms = (time.process_time() - cpu) / replicas * 1e3
        sizes = [share.size for share in shares]

        before, wall = commits(server, database), time.perf_counter()
        one_fleet = await write_runs(stores[0], ids)
        single_tps = (commits(server, database) - before) / (time.perf_counter() - wall)
        mine = shares[0].mine(ids)
        one_share = await write_runs(stores[0], mine)

        others = shares[0].others()
        cpu = time.process_time()
        states = await stores[0].load_states()
        results = await stores[0].latest_results()
        reload_ms = (time.process_time() - cpu) * 1e3
        assert len(states) == len(results) == fleet and len(others) == fleet - len(mine)

        # The read-back as the replicas make it since: the others' rows only, and after the
        # first time only those written since the previous read. A member lease (15 s) is a
        # quarter of a 60 s interval: a quarter of the others' rows have been written anew.
        cpu = time.process_time()
        await stores[0].load_runs(others, changed=True)
        others_ms = (time.process_time() - cpu) * 1e3
        await stores[1].load_states()  # the writer's versions, for its compare-and-set
        await write_runs(stores[1], others[: len(others) // 4])
        cpu = time.process_time()
        changed, _ = await stores[0].load_runs(others, changed=True)
        changed_ms = (time.process_time() - cpu) * 1e3
        assert len(changed) == len(others) // 4, len(changed)

        # One replica stops heartbeating (as if SIGKILLed): the others take its share.
        dead = stores[-1]
        assert dead._heartbeat is not None
        dead._heartbeat.cancel()
        began = time.perf_counter()
        survivors = shares[:-1]
        while True:
            for share in survivors:
                await share.refresh()
            if sum(share.size for share in survivors) == fleet:
                break
            await asyncio.sleep(LEASE / 3)
        takeover = time.perf_counter() - began
        claimed = [i for share in survivors for i in share.mine(ids)]
        duplicates = len(claimed) - len(set(claimed))
        live = sorted(store.member_id for store in stores[:-1] if store.member_id is not None)
        assert all(owner(i, live) in live for i in ids[:100])

        rows = [
            ["shares at start", " / ".join(f"{s:,}" for s in sizes)],
            ["assignment of the fleet, CPU per replica", f"{assign_ms:.0f} ms"],
            ["record_run, one replica writing the whole fleet", f"{one_fleet:.1f} µs CPU/run"],
            ["record_run, one replica writing its share", f"{one_share:.1f} µs CPU/run"],
            ["transactions/s at the server, whole fleet from one replica", f"{single_tps:,.0f}"],
            ["reload of every state and result (before)", f"{reload_ms:,.0f} ms CPU"],
            ["read-back of the others' runs, first time", f"{others_ms:,.0f} ms CPU"],
            [
                "read-back of the others' runs written in one lease (a quarter)",
                f"{changed_ms:,.0f} ms CPU",
            ],
            ["integrations claimed twice after the kill", f"{duplicates}"],
            [f"takeover of a dead replica's share (lease {LEASE:.0f} s)", f"{takeover:.1f} s"],
        ]
    finally:
        for store in stores[:-1]:
            await store.close()
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--integrations", type=int, default=100_000)
    parser.add_argument("--replicas", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"# Replicas on PostgreSQL ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})")
    print(facts_text())
    print(f"- {args.integrations:,} integrations, {args.replicas} replicas (stores in one process)")
    server = start_server()
    try:
        rows = asyncio.run(measure(server, args.integrations, args.replicas))
    finally:
        server.destroy()
    print_table(rows, ["what", "figure"])


if __name__ == "__main__":
    main()

"""asyncpg against psycopg 3 (async, pooled) on the PostgreSQL store's two hot statements.

    python bench/pg_drivers.py [--batches 200] [--batch 200] [--claims 2000]

A throwaway server (the tests' `tests._postgres`, Debian's binaries) on loopback. Each
driver, in a fresh database, with a pool of 4:

- `record_run batch`: the group commit's write, one transaction upserting `--batch` state
  rows with executemany (the store's hottest path: every probe ends in one such row);
- `claim round trip`: one short transaction with one UPDATE ... RETURNING on an empty
  outbox, as the outbox worker polls every second on every replica.

CPU is this process's (driver and event loop; the server's is not counted), per row or per
claim. The floor, measured in the same run, is the same statement count made with asyncpg
as plain `SELECT 1`: the cost of a round trip with nothing to encode.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import asyncpg
import psycopg
import psycopg_pool
from _machine import facts_text, print_table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' server helper
from tests._postgres import PostgresServer, start_server  # noqa: E402

SCHEMA = """CREATE TABLE state (id TEXT PRIMARY KEY, status TEXT NOT NULL, n INTEGER NOT NULL,
    checked TEXT, version BIGINT NOT NULL DEFAULT 1);
CREATE TABLE outbox (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, status TEXT NOT NULL,
    claimed_by BIGINT)"""
UPSERT = (
    "INSERT INTO state (id, status, n, checked) VALUES ({0}, {1}, {2}, {3})"
    " ON CONFLICT (id) DO UPDATE SET status = excluded.status, n = excluded.n,"
    " checked = excluded.checked, version = state.version + 1"
)
CLAIM = (
    "UPDATE outbox SET status = 'sending', claimed_by = {0} WHERE id IN (SELECT id FROM outbox"
    " WHERE status = 'pending' ORDER BY id LIMIT 50 FOR UPDATE SKIP LOCKED) RETURNING id"
)

Measured = Callable[[], Awaitable[None]]


def rows(batch: int, round_: int) -> list[tuple[str, str, int, str]]:
    return [(f"i{n}", "ok", round_, "2026-03-01T12:00:00.000000+00:00") for n in range(batch)]


async def timed(work: Measured, count: int) -> float:
    """CPU microseconds per unit of `work`'s `count` units."""
    cpu = time.process_time()
    await work()
    return (time.process_time() - cpu) / count * 1e6


async def asyncpg_case(dsn: str, batches: int, batch: int, claims: int) -> tuple[float, float]:
    pool = await asyncpg.create_pool(dsn, min_size=4, max_size=4)
    try:
        await pool.execute(SCHEMA)
        upsert, claim = UPSERT.format("$1", "$2", "$3", "$4"), CLAIM.format("$1")

        async def write() -> None:
            for r in range(batches):
                async with pool.acquire() as conn, conn.transaction():
                    await conn.executemany(upsert, rows(batch, r))

        async def poll() -> None:
            for _ in range(claims):
                async with pool.acquire() as conn, conn.transaction():
                    await conn.fetch(claim, 1)

        return await timed(write, batches * batch), await timed(poll, claims)
    finally:
        await pool.close()


async def psycopg_case(dsn: str, batches: int, batch: int, claims: int) -> tuple[float, float]:
    pool = psycopg_pool.AsyncConnectionPool(dsn, min_size=4, max_size=4, open=False)
    await pool.open()
    try:
        async with pool.connection() as conn:
            await conn.execute(SCHEMA)
        upsert, claim = UPSERT.format("%s", "%s", "%s", "%s"), CLAIM.format("%s")

        async def write() -> None:
            for r in range(batches):
                async with pool.connection() as conn, conn.cursor() as cur:
                    await cur.executemany(upsert, rows(batch, r))

        async def poll() -> None:
            for _ in range(claims):
                async with pool.connection() as conn, conn.cursor() as cur:
                    await cur.execute(claim, (1,))
                    await cur.fetchall()

        return await timed(write, batches * batch), await timed(poll, claims)
    finally:
        await pool.close()


async def floor_case(dsn: str, claims: int) -> float:
    pool = await asyncpg.create_pool(dsn, min_size=4, max_size=4)
    try:

        async def ping() -> None:
            for _ in range(claims):
                async with pool.acquire() as conn:
                    await conn.fetchval("SELECT 1")

        return await timed(ping, claims)
    finally:
        await pool.close()


def database(server: PostgresServer) -> str:
    return server.dsn(server.create_database())


async def measure(server: PostgresServer, args: argparse.Namespace) -> list[list[str]]:
    table: list[list[str]] = []
    for name, case in (("asyncpg", asyncpg_case), ("psycopg 3", psycopg_case)):
        write, claim = await case(database(server), args.batches, args.batch, args.claims)
        table.append([name, f"{write:.1f}", f"{claim:.0f}"])
    floor = await floor_case(database(server), args.claims)
    table.append(["floor (asyncpg SELECT 1)", "-", f"{floor:.0f}"])
    return table


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--claims", type=int, default=2000)
    args = parser.parse_args(argv)
    print(f"# PostgreSQL drivers ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})")
    print(facts_text())
    print(f"- asyncpg {asyncpg.__version__}, psycopg {psycopg.__version__} ({psycopg.pq.__impl__})")
    server = start_server()
    try:
        table = asyncio.run(measure(server, args))
    finally:
        server.destroy()
    print_table(table, ["driver", "µs CPU per upserted row", "µs CPU per claim"])


if __name__ == "__main__":
    main()

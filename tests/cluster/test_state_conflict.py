"""A new owner whose previous owner wrote once more after the handover read goes on writing.

The states are a compare-and-set on their version (`PostgresStore`). A replica that gains
an integration reads its state first; if the previous owner still writes it once after
that read (a run going at the handover, or a replica that joined before the others saw
it), the new owner's writes are refused. Before the fix every one of them was, for good:
the stored state froze, and the lease holder never saw the bridge fail. One daemon on a
real PostgreSQL; the late write is made in SQL, as another replica's would land.
"""

from __future__ import annotations

import asyncio

import asyncpg

from healthd.sim.app import SimulatorThread
from tests.conftest import base_config, bridge, running_daemon

WAIT = 30.0  # seconds: a bound, never a timing
BRIDGE = "bridge-dc1"


async def _version(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        found = await conn.fetchval(
            "SELECT version FROM integration_state WHERE integration_id = $1", BRIDGE
        )
        return int(found)
    finally:
        await conn.close()


async def test_an_owner_refused_once_reads_the_state_again_and_its_next_runs_are_stored(
    sim: SimulatorThread, secrets_env: dict[str, str], postgres_url: str
) -> None:
    doc = base_config(sim, [bridge(sim)], store=f"{postgres_url}?lease=60s")
    async with running_daemon(doc) as daemon:
        await daemon.runner.run_many([BRIDGE])
        conn = await asyncpg.connect(postgres_url)
        try:  # the previous owner's last write, after this replica read the state
            await conn.execute(
                "UPDATE integration_state SET version = version + 1 WHERE integration_id = $1",
                BRIDGE,
            )
        finally:
            await conn.close()
        late = await _version(postgres_url)

        await daemon.runner.run_many([BRIDGE])  # refused: it wrote on the version it knew
        async with asyncio.timeout(WAIT):
            while await _version(postgres_url) == late:
                await asyncio.sleep(0.05)
                await daemon.runner.run_many([BRIDGE])

    assert await _version(postgres_url) == late + 1

"""A replica that learns of an integration late still reads its owner's runs so far.

The periodic read-back takes only the rows written since the previous one, and only of
the integrations this replica knows: an owner's run stored before this replica heard of
the integration, and before its last read-back, would otherwise wait for the next run.
One daemon on a real PostgreSQL, a second store beside it as the owning replica.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from healthd.cluster.shares import owner
from healthd.model import IntegrationState, ProbeResult, Status
from healthd.sim.app import SimulatorThread
from healthd.store import PostgresStore
from tests.conftest import running_daemon
from tests.registry.conftest import body, registry_config, registry_env

__all__ = ["registry_env"]  # the fixture, used by name below

pytestmark = pytest.mark.usefixtures("registry_env")

WAIT = 30.0  # seconds: a bound, never a timing


async def test_an_integration_registered_after_its_owners_run_shows_that_run(
    sim: SimulatorThread, tmp_path: Path, postgres_url: str
) -> None:
    doc = registry_config(sim, tmp_path / "unused.db")
    doc["store"] = f"{postgres_url}?lease=60s"
    owning = PostgresStore(postgres_url, member_lease=60.0, pool_size=2)
    await owning.open()
    try:
        async with running_daemon(doc) as daemon:
            assert daemon.shares is not None and owning.member_id is not None
            await daemon.shares.refresh()  # it sees the owning replica
            members = daemon.shares.members
            iid = next(
                f"crm-{n}" for n in range(100) if owner(f"crm-{n}", members) == owning.member_id
            )
            now = datetime.now(UTC)
            await owning.record_run(
                IntegrationState(
                    integration_id=iid, status=Status.OK, last_checked=now, consecutive_failures=0
                ),
                ProbeResult.from_findings(
                    integration_id=iid, started_at=now, duration_seconds=0.1, findings=[]
                ),
                [],
            )
            await daemon.shares.read_back_others()  # the periodic read passes that run by

            await daemon.fleet.put(iid, body(sim, "late"))

            async with asyncio.timeout(WAIT):
                while daemon.runner.states[iid].last_checked is None:
                    await asyncio.sleep(0.02)
            assert daemon.runner.states[iid].last_checked == now
    finally:
        await owning.close()

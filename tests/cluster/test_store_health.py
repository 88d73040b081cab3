"""A replica that probes nothing still reports a PostgreSQL outage as its own trouble.

The cluster's own calls (heartbeat, shares, the alert lease, the read-back) go to the
PostgreSQL store directly, not through `MonitoredStore`; the store's health is still
marked failing within the outbox's poll (every replica claims due rows every 0.5 s through
the monitored store) and healthy again once the database answers, whatever call meets the
outage first. One daemon on a real PostgreSQL, no scheduler: nothing it writes by itself.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from healthd.sim.app import SimulatorThread
from tests._postgres import PostgresServer
from tests.alerts.test_engine_lease import refuse_connections
from tests.conftest import running_daemon
from tests.registry.conftest import registry_config, registry_env

__all__ = ["registry_env"]  # the fixture, used by name below

pytestmark = pytest.mark.usefixtures("registry_env")

WAIT = 30.0  # seconds: a bound, never a timing


async def test_a_replica_probing_nothing_reports_the_database_away_and_back(
    sim: SimulatorThread, tmp_path: Path, postgres_server: PostgresServer, postgres_url: str
) -> None:
    doc = registry_config(sim, tmp_path / "unused.db")
    doc["store"] = f"{postgres_url}?lease=60s"
    database = postgres_url.rsplit("/", 1)[-1]
    async with running_daemon(doc) as daemon:
        health = daemon.store_health
        assert health.healthy and daemon.lease is not None
        refuse_connections(postgres_server, database, True)
        try:
            async with asyncio.timeout(WAIT):
                while health.healthy:
                    await asyncio.sleep(0.05)
            assert database in (health.reason or "")
            assert daemon.not_ready() is not None
        finally:
            refuse_connections(postgres_server, database, False)
        async with asyncio.timeout(WAIT):
            while not health.healthy:
                await asyncio.sleep(0.05)

"""The runner's batches: a run's task exists only once the semaphore gives it a place.

The bridges here answer from a small aiohttp app on loopback that holds every request
until the test lets it go, so a batch larger than the runner's concurrency is caught
while it waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from healthd import catalog
from healthd.clock import SystemClock
from healthd.http import make_session
from healthd.metrics import Instruments
from healthd.model import Integration, Status, Thresholds
from healthd.runner import Runner
from healthd.secrets import Secret
from healthd.store import MemoryStore
from probes.bridge import BridgeOptions, BridgeProbe

CONCURRENCY = 2


class HeldBridge:
    """Answers the bridge's server-info request once `release` is set; counts arrivals."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.arrived = 0
        self.arrival = asyncio.Event()

    async def info(self, _request: web.Request) -> web.Response:
        self.arrived += 1
        self.arrival.set()
        await self.release.wait()
        data = {"server_version": "1.9", "detected_imessage": "someone@example.test"}
        return web.json_response({"status": 200, "data": data})


@pytest.fixture
async def bridge() -> AsyncIterator[tuple[HeldBridge, str]]:
    held = HeldBridge()
    app = web.Application()
    app.router.add_get("/api/v1/server/info", held.info)
    app_runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await app_runner.setup()
    site = web.TCPSite(app_runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield held, f"http://127.0.0.1:{port}"
    finally:
        held.release.set()
        await app_runner.cleanup()


def bridges(base_url: str, n: int) -> list[Integration]:
    return [
        Integration(
            id=f"b{i}",
            provider="imessage_bridge",
            tenant="platform",
            base_url=base_url,
            page=False,
            interval=timedelta(seconds=60),
            timeout=timedelta(seconds=10),
            thresholds=Thresholds(),
            credentials={"password": Secret("pw")},
            options=BridgeOptions(check_backlog=False),
            traits=BridgeProbe.traits,
        )
        for i in range(n)
    ]


async def until(condition: asyncio.Event, held: HeldBridge, count: int) -> None:
    async with asyncio.timeout(5):
        while held.arrived < count:
            condition.clear()
            await condition.wait()


def probe_tasks() -> int:
    return sum(1 for t in asyncio.all_tasks() if t.get_name().startswith("probe:"))


async def test_a_batch_larger_than_the_concurrency_waits_as_one_and_gives_every_place_back(
    bridge: tuple[HeldBridge, str],
) -> None:
    held, url = bridge
    session = make_session(CONCURRENCY)
    runner = Runner(
        integrations=bridges(url, 50),
        store=MemoryStore(),
        session=session,
        catalog=catalog.load(),
        clock=SystemClock(),
        instruments=Instruments(CollectorRegistry()),
        concurrency=CONCURRENCY,
    )
    try:
        batch = asyncio.create_task(runner.run_many([f"b{i}" for i in range(49)]))
        await until(held.arrival, held, CONCURRENCY)
        assert probe_tasks() == CONCURRENCY  # not 49: the rest wait as the batch itself

        batch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await batch
        held.release.set()
        # Every place came back: one more run gets one at once.
        async with asyncio.timeout(5):
            result = await runner.run_once("b49")
        assert result.status is Status.OK
    finally:
        await session.close()

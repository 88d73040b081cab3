"""The runner's batches: a run's task exists only once the semaphore gives it a place.

The bridges here answer from a small aiohttp app on loopback that holds every request
until the test lets it go, so a batch larger than the runner's concurrency is caught
while it waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from healthd import catalog
from healthd.clock import SystemClock
from healthd.http import make_session
from healthd.metrics import Instruments
from healthd.model import (
    Integration,
    IntegrationState,
    ProbeResult,
    RunChange,
    Status,
    Thresholds,
)
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


async def test_adopting_runs_read_back_reports_each_integrations_change_from_what_it_held() -> None:
    """Another replica's runs, read back (`Runner.adopt`): one change per integration
    taken, from the state and result the runner held to those it holds now, so the alert
    engine updates only those (`AlertEngine.reread`). A result not stored keeps the one
    held; a state not stored starts afresh; an id no longer in the fleet is skipped."""
    session = make_session(CONCURRENCY)
    runner = Runner(
        integrations=bridges("http://127.0.0.1:9", 2),
        store=MemoryStore(),
        session=session,
        catalog=catalog.load(),
        clock=SystemClock(),
        instruments=Instruments(CollectorRegistry()),
        concurrency=CONCURRENCY,
    )
    now = datetime.now(UTC)
    failing = IntegrationState(integration_id="b0", status=Status.FAILING, since=now)
    result = ProbeResult.from_findings(
        integration_id="b0", started_at=now, duration_seconds=0.1, findings=()
    )
    try:
        first = runner.adopt(["b0", "gone"], {"b0": failing}, {"b0": result})
        later = IntegrationState(integration_id="b0", status=Status.OK, since=now)
        second = runner.adopt(["b0", "b1"], {"b0": later}, {})
    finally:
        await session.close()
    fresh = IntegrationState(integration_id="b0")
    assert first == [RunChange(before=fresh, before_result=None, after=failing, result=result)]
    assert second == [
        RunChange(before=failing, before_result=result, after=later, result=result),
        RunChange(
            before=IntegrationState(integration_id="b1"),
            before_result=None,
            after=IntegrationState(integration_id="b1"),
            result=None,
        ),
    ]
    held = {"b0": later, "b1": IntegrationState(integration_id="b1")}
    assert runner.snapshot()[1:] == (held, {"b0": result})

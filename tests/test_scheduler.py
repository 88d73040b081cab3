"""The scheduler: first runs spread over the interval, open incidents first, one at a time."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

from healthd.model import Integration, Thresholds
from healthd.scheduler import Scheduler


def integration(iid: str, interval: float = 3600) -> Integration:
    return Integration(
        id=iid,
        provider="imessage_bridge",
        tenant="platform",
        base_url="http://127.0.0.1:1",
        page=True,
        interval=timedelta(seconds=interval),
        timeout=timedelta(seconds=1),
        thresholds=Thresholds(),
    )


async def test_integrations_with_an_open_incident_run_first_and_the_rest_are_spread() -> None:
    calls: list[str] = []
    ran = asyncio.Event()

    async def run(iid: str) -> None:
        calls.append(iid)
        ran.set()

    rng = random.Random(7)  # the hourly spread puts "b" and "c" minutes away
    scheduler = Scheduler(
        [integration("a"), integration("b"), integration("c")],
        run,
        jitter=timedelta(0),
        first={"b"},
        rng=rng,
    )
    scheduler.start()
    try:
        async with asyncio.timeout(5):
            await ran.wait()
    finally:
        scheduler.shutdown()
    assert calls == ["b"]


async def test_a_run_still_going_is_not_started_twice() -> None:
    started = 0
    release = asyncio.Event()

    async def run(iid: str) -> None:
        nonlocal started
        started += 1
        await release.wait()

    scheduler = Scheduler([integration("a", interval=0.2)], run, jitter=timedelta(0), first={"a"})
    scheduler.start()
    try:
        async with asyncio.timeout(5):
            while started == 0:
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.7)  # three more turns come due while the first still runs
        assert started == 1
    finally:
        release.set()
        scheduler.shutdown()

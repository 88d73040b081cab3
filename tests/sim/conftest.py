from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from healthd.sim import SimClient, Simulator, SimulatorThread

ROUTING_KEY = "R0UT1NGKEY0123456789abcdefABCDEF"  # 32 characters, like an integration key


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with asyncio.timeout(10), Simulator() as s:
        yield s


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


@pytest.fixture
def sim_thread() -> Iterator[SimulatorThread]:
    with SimulatorThread() as s:
        yield s


@pytest.fixture
def control(sim_thread: SimulatorThread) -> SimClient:
    return sim_thread.client()

"""SharedAnswers: one fetch serves every probe that asks for the same thing meanwhile."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from healthd.clock import FakeClock
from healthd.http import SharedAnswers

TTL = timedelta(seconds=30)


class Fetcher:
    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()
        self.fail: Exception | None = None

    async def __call__(self) -> str:
        self.calls += 1
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return f"answer {self.calls}"


async def test_callers_asking_at_once_share_one_fetch() -> None:
    shared, fetch = SharedAnswers(FakeClock()), Fetcher()
    callers = [asyncio.create_task(shared.get("page", TTL, fetch)) for _ in range(5)]
    await asyncio.sleep(0)
    fetch.release.set()
    async with asyncio.timeout(5):
        answers = await asyncio.gather(*callers)
    assert answers == ["answer 1"] * 5 and fetch.calls == 1


async def test_an_answer_is_kept_for_the_ttl_then_fetched_again() -> None:
    clock, fetch = FakeClock(), Fetcher()
    shared = SharedAnswers(clock)
    fetch.release.set()
    assert await shared.get("page", TTL, fetch) == "answer 1"
    clock.advance(29)
    assert await shared.get("page", TTL, fetch) == "answer 1"
    clock.advance(1)
    assert await shared.get("page", TTL, fetch) == "answer 2"


async def test_a_failure_reaches_its_waiters_and_is_not_kept() -> None:
    shared, fetch = SharedAnswers(FakeClock()), Fetcher()
    fetch.fail = ConnectionError("down")
    callers = [asyncio.create_task(shared.get("page", TTL, fetch)) for _ in range(3)]
    await asyncio.sleep(0)
    fetch.release.set()
    async with asyncio.timeout(5):
        outcomes = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(o, ConnectionError) for o in outcomes) and fetch.calls == 1
    fetch.fail = None
    assert await shared.get("page", TTL, fetch) == "answer 2"


async def test_a_waiter_fetches_itself_when_the_fetching_caller_is_cut_off() -> None:
    shared, fetch = SharedAnswers(FakeClock()), Fetcher()
    first = asyncio.create_task(shared.get("page", TTL, fetch))
    await asyncio.sleep(0)
    second = asyncio.create_task(shared.get("page", TTL, fetch))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    fetch.release.set()
    async with asyncio.timeout(5):
        assert await second == "answer 2"
    with pytest.raises(asyncio.CancelledError):
        await first

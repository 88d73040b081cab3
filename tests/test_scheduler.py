"""The scheduler: first runs spread over slots of the interval, open incidents first, no overlap."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from healthd.clock import FakeClock
from healthd.model import Integration, Thresholds
from healthd.scheduler import Scheduler, slots


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


async def first_calls(fleet: list[Integration], **options: Any) -> list[list[str]]:
    """Start a scheduler over `fleet`, wait (bounded) for its first call, stop it: the
    integration ids of every call made by then."""
    calls: list[list[str]] = []
    ran = asyncio.Event()

    async def run(ids: Sequence[str]) -> None:
        calls.append(list(ids))
        ran.set()

    scheduler = Scheduler(fleet, run, jitter=timedelta(0), **options)
    scheduler.start()
    try:
        async with asyncio.timeout(5):
            await ran.wait()
    finally:
        scheduler.shutdown()
    return calls


async def test_integrations_with_an_open_incident_run_first_and_the_rest_are_spread() -> None:
    fleet = [integration("a"), integration("b"), integration("c")]
    # The hourly spread puts "a" and "c" minutes away.
    assert await first_calls(fleet, first={"b"}, rng=random.Random(7)) == [["b"]]


async def test_a_run_still_going_is_not_started_twice() -> None:
    started = 0
    release = asyncio.Event()

    async def run(ids: Sequence[str]) -> None:
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


def test_integrations_are_spread_over_one_second_slots_of_their_interval() -> None:
    fleet = [integration(f"i{n}", interval=60) for n in range(6000)]
    grouped = slots(fleet, first=set(), rng=random.Random(1))
    assert {interval for interval, _ in grouped} == {timedelta(seconds=60)}
    assert sorted(slot for _, slot in grouped) == list(range(60))
    assert sorted(i for ids in grouped.values() for i in ids) == sorted(i.id for i in fleet)
    assert max(len(ids) for ids in grouped.values()) < 2 * 6000 / 60


def test_integrations_with_different_intervals_never_share_a_slot() -> None:
    grouped = slots(
        [integration("fast", interval=1), integration("slow", interval=1.5)],
        first={"fast", "slow"},
        rng=random.Random(1),
    )
    assert grouped == {
        (timedelta(seconds=1), 0): ["fast"],
        (timedelta(seconds=1.5), 0): ["slow"],
    }


async def test_a_slot_runs_its_integrations_together() -> None:
    fleet = [integration(i, interval=0.5) for i in ("a", "b", "c")]
    calls = await first_calls(fleet, rng=random.Random(1))
    assert calls[0] == ["a", "b", "c"]


T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_after_a_restart_each_integration_runs_one_interval_after_its_stored_last_check() -> None:
    fleet = [integration(f"i{n}", interval=60) for n in range(60)]
    clock = FakeClock(T0)
    # i0 was checked 59 s before the restart, i1 58 s before ... i59 0 s before.
    checked = {f"i{n}": T0 - timedelta(seconds=59 - n) for n in range(60)}
    grouped = slots(fleet, set(), random.Random(1), last_checked=checked, now=clock.now())
    slot_of = {iid: slot for (_, slot), ids in grouped.items() for iid in ids}
    # i59, due a whole interval on, goes to the interval's last slot.
    assert slot_of == {f"i{n}": n + 1 for n in range(59)} | {"i59": 59}


def test_a_restart_on_a_full_store_does_not_probe_everything_at_once() -> None:
    fleet = [integration(f"i{n}", interval=60) for n in range(6000)]
    checked = {f"i{n}": T0 - timedelta(seconds=n % 60, milliseconds=500) for n in range(6000)}
    grouped = slots(fleet, set(), random.Random(1), last_checked=checked, now=T0)
    per_slot = {slot: len(ids) for (_, slot), ids in grouped.items()}
    assert per_slot == {slot: 100 for slot in range(60)}


def test_integrations_never_checked_or_overdue_are_spread_and_open_incidents_go_first() -> None:
    fleet = [integration(f"i{n}", interval=60) for n in range(6000)]
    # Half were last checked an hour ago (healthd was down), half never.
    checked = {f"i{n}": T0 - timedelta(hours=1) for n in range(0, 6000, 2)}
    grouped = slots(fleet, {"i1"}, random.Random(1), last_checked=checked, now=T0)
    slot_of = {iid: slot for (_, slot), ids in grouped.items() for iid in ids}
    assert slot_of["i1"] == 0
    assert sorted({slot for _, slot in grouped}) == list(range(60))
    assert max(len(ids) for ids in grouped.values()) < 200  # about 100 each, none all at once


async def calls_after_change(change: Any) -> list[str]:
    """A scheduler over an hourly fleet (nothing due soon), changed by `change(scheduler)`
    once started: the ids of the first call made after the change (bounded)."""
    calls: list[list[str]] = []
    ran = asyncio.Event()

    async def run(ids: Sequence[str]) -> None:
        calls.append(list(ids))
        ran.set()

    scheduler = Scheduler([integration("hourly")], run, jitter=timedelta(0), rng=random.Random(7))
    scheduler.start()
    try:
        change(scheduler)
        async with asyncio.timeout(5):
            await ran.wait()
    finally:
        scheduler.shutdown()
    return calls[0]


async def test_an_integration_added_at_run_time_gets_a_slot_of_its_interval() -> None:
    def add(scheduler: Scheduler) -> None:
        scheduler.add(integration("new", interval=1))

    assert await calls_after_change(add) == ["new"]


async def test_an_integration_removed_at_run_time_leaves_its_slot() -> None:
    def add_two_remove_one(scheduler: Scheduler) -> None:
        scheduler.add(integration("stays", interval=1))
        scheduler.add(integration("goes", interval=1))  # a 1 s interval has one slot
        scheduler.remove("goes")

    assert await calls_after_change(add_two_remove_one) == ["stays"]

"""The group commit's contract, against a fake batch write: what every backend gets for free."""

from __future__ import annotations

import asyncio

from healthd.errors import StoreError
from healthd.store._writer import GroupCommit, RowsRefused


class FakeBackend:
    """A batch write that records the batches it committed; refuses or fails on demand."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.committed: list[list[str]] = []
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()
        self.gate.set()
        self.refused: set[str] = set()
        self.failure: Exception | None = None

    async def write(self, batch: list[str]) -> None:
        self.calls.append(list(batch))
        self.entered.set()
        await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        if self.refused & set(batch):
            raise RowsRefused(f"test store: record_run failed: refused {sorted(batch)}")
        self.committed.append(list(batch))


def _writer(backend: FakeBackend) -> GroupCommit[str]:
    return GroupCommit(backend.write, label="test store", task_name="test-runs")


async def test_items_queued_during_a_write_are_written_together_next_in_order() -> None:
    backend = FakeBackend()
    backend.gate.clear()
    writer = _writer(backend)
    first = asyncio.create_task(writer.submit("a"))

    async def open_gate() -> None:
        backend.gate.set()

    async with asyncio.timeout(5):
        await backend.entered.wait()
        # gather starts its tasks in order: b and c queue before the gate opens.
        await asyncio.gather(writer.submit("b"), writer.submit("c"), open_gate())
        await first

    assert backend.committed == [["a"], ["b", "c"]]


async def test_a_refused_batch_is_written_item_by_item_and_only_the_culprit_fails() -> None:
    backend = FakeBackend()
    backend.refused = {"bad"}
    writer = _writer(backend)

    async with asyncio.timeout(5):
        outcomes = await asyncio.gather(
            *(writer.submit(item) for item in ("ok1", "bad", "ok2")), return_exceptions=True
        )

    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], RowsRefused)
    assert backend.calls == [["ok1", "bad", "ok2"], ["ok1"], ["bad"], ["ok2"]]
    assert backend.committed == [["ok1"], ["ok2"]]


async def test_a_failure_that_is_no_items_fault_reaches_every_caller_of_the_batch() -> None:
    backend = FakeBackend()
    backend.failure = StoreError("test store: record_run failed: database is locked")
    writer = _writer(backend)

    async with asyncio.timeout(5):
        outcomes = await asyncio.gather(
            *(writer.submit(item) for item in ("a", "b")), return_exceptions=True
        )
        backend.failure = None
        await writer.submit("later")

    assert all(isinstance(o, StoreError) and "locked" in str(o) for o in outcomes)
    assert backend.calls == [["a", "b"], ["later"]]
    assert backend.committed == [["later"]]


async def test_flush_returns_once_every_queued_item_is_written() -> None:
    backend = FakeBackend()
    writer = _writer(backend)

    async with asyncio.timeout(5):
        outcomes = await asyncio.gather(writer.submit("a"), writer.submit("b"), writer.flush())

    assert outcomes == [None, None, None]
    assert backend.committed == [["a", "b"]]


class PaceClock:
    """The writer's pace, driven by the test: a monotonic time it sets, and a sleep that
    records what was asked and returns once the test lets it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.asked: list[float] = []
        self.sleeping = asyncio.Event()
        self.wake = asyncio.Event()

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.asked.append(seconds)
        self.sleeping.set()
        await self.wake.wait()


def _paced(backend: FakeBackend, clock: PaceClock) -> GroupCommit[str]:
    return GroupCommit(
        backend.write,
        label="test store",
        task_name="test-runs",
        pace=10.0,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    )


async def test_a_run_after_a_quiet_spell_is_written_at_once() -> None:
    backend, clock = FakeBackend(), PaceClock()
    writer = _paced(backend, clock)

    async with asyncio.timeout(5):
        await writer.submit("a")
        clock.now = 10.0  # a whole pace after that commit
        await writer.submit("b")

    assert backend.committed == [["a"], ["b"]]
    assert clock.asked == []


async def test_runs_within_the_pace_of_a_commit_wait_for_it_and_share_one_batch() -> None:
    backend, clock = FakeBackend(), PaceClock()
    writer = _paced(backend, clock)

    async with asyncio.timeout(5):
        await writer.submit("a")
        clock.now = 1.0
        second = asyncio.create_task(writer.submit("b"))
        await clock.sleeping.wait()  # b waits for the pace; c arrives meanwhile
        third = asyncio.create_task(writer.submit("c"))
        await asyncio.sleep(0)
        assert backend.calls == [["a"]]
        clock.wake.set()
        await asyncio.gather(second, third)

    assert backend.committed == [["a"], ["b", "c"]]
    assert clock.asked == [9.0]

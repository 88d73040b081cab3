"""The delivery ledger: counted once, windows that age by the clock, kept across a restart."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from healthd import ledger as ledger_module
from healthd.clock import FakeClock
from healthd.errors import StoreError
from healthd.interfaces import PollCursor
from healthd.ledger import DeliveryLedger, Key, Window
from healthd.model import Category, DeliveryOutcome, DeliveryStage
from healthd.store import MemoryStore, SQLiteStore

T0 = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)
UNDELIVERED = Key("undelivered", "30003", "recipient")


def outcome(
    message_id: str,
    at: datetime,
    status: str = "undelivered",
    stage: DeliveryStage = DeliveryStage.FINAL,
) -> DeliveryOutcome:
    return DeliveryOutcome(
        integration_id="tw-1",
        message_id=message_id,
        status=status,
        stage=stage,
        category=Category.RECIPIENT,
        provider_code="30003" if status == "undelivered" else None,
        at=at,
    )


class Running:
    """A ledger with its writer task going, stopped (and drained) at the end."""

    def __init__(self, ledger: DeliveryLedger) -> None:
        self.ledger = ledger
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(ledger.run(self.stop))

    async def drain(self) -> None:
        async with asyncio.timeout(10):
            await self.ledger.drained()

    async def close(self) -> None:
        self.stop.set()
        async with asyncio.timeout(10):
            await self.task


@pytest.fixture
def counted() -> list[DeliveryOutcome]:
    """What the ledger reported as counted (its metrics hook), in order."""
    return []


async def _running(
    store: MemoryStore | SQLiteStore, clock: FakeClock, seen: list[DeliveryOutcome]
) -> Running:
    ledger = DeliveryLedger(store, clock, on_counted=seen.append, batch=100, retry_seconds=0)
    await ledger.load()
    return Running(ledger)


async def test_a_message_ages_out_of_the_hour_window_exactly_once(
    counted: list[DeliveryOutcome],
) -> None:
    clock = FakeClock(T0)
    run = await _running(MemoryStore(), clock, counted)
    run.ledger.submit([outcome("SM1", T0)])
    await run.drain()
    seen = []
    for minutes in range(0, 125):
        now = T0 + timedelta(minutes=minutes)
        seen.append(run.ledger.counts("tw-1", Window.HOUR, now)[UNDELIVERED])
    await run.close()
    # In the window from its minute (12:00) until 12:59; out from 13:00 on, and never back.
    assert seen == [1] * 60 + [0] * 65


async def test_the_quarter_window_holds_fifteen_minutes(counted: list[DeliveryOutcome]) -> None:
    clock = FakeClock(T0)
    run = await _running(MemoryStore(), clock, counted)
    run.ledger.submit([outcome("SM1", T0), outcome("SM2", T0 + timedelta(minutes=10))])
    await run.drain()
    later = T0 + timedelta(minutes=16)
    quarter = run.ledger.counts("tw-1", Window.QUARTER, later)[UNDELIVERED]
    hour = run.ledger.counts("tw-1", Window.HOUR, later)[UNDELIVERED]
    await run.close()
    assert (quarter, hour) == (1, 2)


async def test_the_day_window_keeps_what_the_hour_window_has_dropped(
    counted: list[DeliveryOutcome],
) -> None:
    clock = FakeClock(T0)
    run = await _running(MemoryStore(), clock, counted)
    run.ledger.submit([outcome("SM1", T0)])
    await run.drain()
    day = [
        run.ledger.counts("tw-1", Window.DAY, T0 + timedelta(hours=h))[UNDELIVERED]
        for h in (2, 23, 25)
    ]
    await run.close()
    assert day == [1, 1, 0]


async def test_a_replayed_and_a_repeated_outcome_are_counted_once(
    counted: list[DeliveryOutcome],
) -> None:
    clock = FakeClock(T0)
    run = await _running(MemoryStore(), clock, counted)
    run.ledger.submit([outcome("SM1", T0, "sent", DeliveryStage.PENDING)])
    run.ledger.submit([outcome("SM1", T0), outcome("SM1", T0)])
    run.ledger.submit([outcome("SM1", T0 + timedelta(minutes=1))])
    await run.drain()
    total = run.ledger.counts("tw-1", Window.HOUR, T0 + timedelta(minutes=2))
    await run.close()
    assert total == {UNDELIVERED: 1}
    assert [o.message_id for o in counted] == ["SM1"]


async def test_a_restart_keeps_the_windows(tmp_path: Path, counted: list[DeliveryOutcome]) -> None:
    clock = FakeClock(T0)
    store = SQLiteStore(tmp_path / "ledger.db")
    await store.open()
    run = await _running(store, clock, counted)
    run.ledger.submit([outcome(f"SM{n}", T0 + timedelta(minutes=n)) for n in range(3)])
    await run.drain()
    await run.close()
    await store.close()

    clock.advance(timedelta(minutes=5))
    reopened = SQLiteStore(tmp_path / "ledger.db")
    await reopened.open()
    after: list[DeliveryOutcome] = []
    again = await _running(reopened, clock, after)
    again.ledger.submit([outcome("SM0", clock.now())])  # a replay after the restart
    await again.drain()
    total = again.ledger.counts("tw-1", Window.HOUR, clock.now())
    await again.close()
    await reopened.close()
    assert total == {UNDELIVERED: 3}
    assert after == []  # reloaded outcomes are not counted again in the metrics


async def test_a_burst_of_ten_thousand_outcomes_is_all_counted(
    tmp_path: Path, counted: list[DeliveryOutcome]
) -> None:
    clock = FakeClock(T0)
    store = SQLiteStore(tmp_path / "burst.db")
    await store.open()
    run = await _running(store, clock, counted)
    for n in range(10_000):
        assert run.ledger.submit([outcome(f"SM{n:05d}", T0)])
    await run.drain()
    total = run.ledger.counts("tw-1", Window.HOUR, T0)[UNDELIVERED]
    await run.close()
    await store.close()
    assert total == 10_000
    assert len(counted) == 10_000


async def test_a_full_queue_refuses_the_whole_submission() -> None:
    ledger = DeliveryLedger(MemoryStore(), FakeClock(T0), limit=3)
    assert ledger.submit([outcome("SM1", T0), outcome("SM2", T0)])
    assert not ledger.submit([outcome("SM3", T0), outcome("SM4", T0)])
    assert ledger.queued == 2


async def test_an_accepted_poll_moves_its_cursor_on() -> None:
    ledger = DeliveryLedger(MemoryStore(), FakeClock(T0))
    assert ledger.polled_until("tw-1") is None
    assert ledger.submit([outcome("SM1", T0)], cursor=PollCursor("tw-1", T0))
    assert ledger.polled_until("tw-1") == T0
    assert ledger.polled_until("tw-2") is None


async def test_a_refused_poll_leaves_its_cursor_so_the_next_hands_over_everything() -> None:
    ledger = DeliveryLedger(MemoryStore(), FakeClock(T0), limit=1)
    assert ledger.submit([outcome("SM1", T0)], cursor=PollCursor("tw-1", T0))
    later = T0 + timedelta(minutes=1)
    assert not ledger.submit([outcome("SM2", later)], cursor=PollCursor("tw-1", later))
    assert ledger.polled_until("tw-1") == T0


async def test_cursors_past_the_limit_are_all_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_module, "CURSORS_KEPT", 2)
    ledger = DeliveryLedger(MemoryStore(), FakeClock(T0))
    for name in ("tw-1", "tw-2"):
        ledger.submit([], cursor=PollCursor(name, T0))
    ledger.submit([], cursor=PollCursor("tw-1", T0))  # one it keeps: nothing dropped
    assert ledger.polled_until("tw-2") == T0
    ledger.submit([], cursor=PollCursor("tw-3", T0))
    assert [ledger.polled_until(n) for n in ("tw-1", "tw-2", "tw-3")] == [None, None, T0]


class _FailingOnce(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    async def record_deliveries(self, outcomes):  # type: ignore[no-untyped-def]
        if self.failures:
            self.failures -= 1
            raise StoreError("disk full")
        return await super().record_deliveries(outcomes)


async def test_a_batch_the_store_refused_is_written_on_the_next_try(
    counted: list[DeliveryOutcome],
) -> None:
    clock = FakeClock(T0)
    store = _FailingOnce()
    run = await _running(store, clock, counted)
    run.ledger.submit([outcome("SM1", T0)])
    await run.drain()
    await run.close()
    assert store.failures == 0
    assert [o.message_id for o in counted] == ["SM1"]


def _failure(message_id: str, status: str, code: str | None, category: Category | None):  # type: ignore[no-untyped-def]
    return DeliveryOutcome(
        integration_id="tw-1",
        message_id=message_id,
        status=status,
        stage=DeliveryStage.FINAL,
        category=category,
        provider_code=code,
        at=T0,
    )


async def test_the_error_rate_is_the_hours_sender_side_failures_per_message() -> None:
    clock = FakeClock(T0)
    ledger = DeliveryLedger(MemoryStore(), clock)
    running = Running(ledger)
    before = ledger.error_rate("tw-1", clock.now())
    ledger.submit(
        [
            *(_failure(f"SM{n}", "delivered", None, None) for n in range(6)),
            _failure("SMa", "failed", "21408", Category.SENDER_CONFIG),
            _failure("SMb", "failed", "20003", Category.ACCOUNT),
            _failure("SMc", "undelivered", "30003", Category.RECIPIENT),
            _failure("SMd", "undelivered", "30007", Category.CONTENT),
        ]
    )
    await running.drain()
    during = ledger.error_rate("tw-1", clock.now())
    clock.advance(timedelta(hours=1))
    after = ledger.error_rate("tw-1", clock.now())
    await running.close()

    assert (before, during, after) == (None, 2 / 10, None)

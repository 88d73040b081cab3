"""The arithmetic of history: windows, cells and shares over a store's buckets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from healthd import history
from healthd.model import (
    Incident,
    IntegrationState,
    ProbeResult,
    Status,
    Transition,
    TransitionKind,
)
from healthd.store import MemoryStore

DAY = datetime(2026, 3, 1, tzinfo=UTC)
END_OF_DAY = DAY + timedelta(hours=23, minutes=59)


async def _scripted_day(store: MemoryStore, bad_minutes: set[int], degraded: set[int]) -> None:
    """One run every 5 minutes from midnight; the listed minutes' runs fail (or degrade)."""
    for minute in range(0, 24 * 60, 5):
        status = Status.OK
        if minute in bad_minutes:
            status = Status.UNREACHABLE
        elif minute in degraded:
            status = Status.DEGRADED
        at = DAY + timedelta(minutes=minute)
        result = ProbeResult(
            integration_id="bridge-dc1", status=status, started_at=at, duration_seconds=0.1
        )
        await store.record_run(IntegrationState(integration_id="bridge-dc1"), result, [])


async def test_the_uptime_of_a_scripted_day_is_exactly_the_runs_that_worked() -> None:
    store = MemoryStore()
    outage = set(range(13 * 60, 13 * 60 + 60, 5))  # 13:00-13:55, twelve runs
    await _scripted_day(store, outage, degraded={600, 605})

    day = await history.load(store, "bridge-dc1", history.WINDOWS["24h"], END_OF_DAY)

    assert day.share == (288 - 12) / 288
    assert [c.bad for c in day.cells] == [12 if h == 13 else 0 for h in range(24)]
    assert day.cells[10].degraded == 2 and history.share([day.cells[10]]) == 1.0
    assert day.cells[13].up == 0 and history.share([day.cells[13]]) == 0.0


async def test_the_90_day_bar_has_one_cell_per_day_ending_today() -> None:
    store = MemoryStore()
    await _scripted_day(store, set(range(0, 24 * 60, 10)), degraded=set())  # every other run

    bar = await history.load(store, "bridge-dc1", history.WINDOWS["90d"], END_OF_DAY)

    assert len(bar.cells) == 90
    assert bar.cells[-1].start == DAY and bar.cells[0].start == DAY - timedelta(days=89)
    assert [history.share([c]) for c in bar.cells[-2:]] == [None, 0.5]
    assert bar.share == 0.5


async def test_a_window_with_no_run_in_it_has_no_share() -> None:
    store = MemoryStore()
    await _scripted_day(store, set(), set())
    later = await history.load(store, "bridge-dc1", history.WINDOWS["24h"], DAY + timedelta(days=2))
    assert later.share is None
    assert all(c.runs == 0 for c in later.cells)


async def test_a_window_holds_the_transitions_since_its_first_cell_newest_first() -> None:
    store = MemoryStore()
    moments = [DAY - timedelta(hours=30), DAY + timedelta(hours=2), DAY + timedelta(hours=5)]
    for at in moments:
        change = Transition(
            integration_id="bridge-dc1",
            kind=TransitionKind.FAILED,
            at=at,
            from_status=Status.OK,
            to_status=Status.FAILING,
        )
        result = ProbeResult(
            integration_id="bridge-dc1", status=Status.FAILING, started_at=at, duration_seconds=0.1
        )
        await store.record_run(IntegrationState(integration_id="bridge-dc1"), result, [change])
    day = await history.load(store, "bridge-dc1", history.WINDOWS["24h"], END_OF_DAY)
    assert [t.at for t in day.transitions] == moments[:0:-1]


@pytest.mark.parametrize(
    ("name", "cells", "first"),
    [
        ("24h", 24, datetime(2026, 3, 1, 13, tzinfo=UTC)),
        ("7d", 168, datetime(2026, 2, 23, 13, tzinfo=UTC)),
        ("30d", 30, datetime(2026, 2, 1, tzinfo=UTC)),
        ("90d", 90, datetime(2025, 12, 3, tzinfo=UTC)),
    ],
)
def test_each_window_ends_with_the_cell_now_is_in(name: str, cells: int, first: datetime) -> None:
    now = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)
    window = history.WINDOWS[name]
    assert window.cells == cells
    assert window.first(now) == first


def test_an_open_incident_has_lasted_until_now() -> None:
    opened = DAY + timedelta(hours=1)
    incident = Incident(dedup_key="k", rule="r", summary="s", opened_at=opened)
    assert history.duration(incident, opened + timedelta(minutes=7)) == timedelta(minutes=7)


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (0, "0 s"),
        (59, "59 s"),
        (60, "1 min"),
        (3599, "59 min"),
        (3600, "1 h"),
        (3900, "1 h 5 min"),
        (86400, "1 d"),
        (90000, "1 d 1 h"),
    ],
)
def test_a_length_of_time_is_said_as_people_say_it(seconds: int, said: str) -> None:
    assert history.describe(seconds) == said


@pytest.mark.parametrize(
    ("share", "said"), [(None, "no data"), (1.0, "100%"), (0.99999, "99.99%"), (0.5, "50.00%")]
)
def test_a_share_is_a_percentage_that_never_rounds_up_to_100(
    share: float | None, said: str
) -> None:
    assert history.percent(share) == said

"""Run-time silences as the engine keeps them: in the store's meta, by the injected clock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from healthd.alerts.settings import MaintenanceWindow
from healthd.alerts.silences import META_KEY, SilenceExists, SilenceNotFound, Silences
from healthd.clock import FakeClock
from healthd.store.memory import MemoryStore


def window(clock: FakeClock, name: str = "w", minutes: int = 30) -> MaintenanceWindow:
    now = clock.now()
    return MaintenanceWindow(name=name, start=now, end=now + timedelta(minutes=minutes))


async def test_a_silence_added_is_read_back_by_a_new_instance_on_the_same_store() -> None:
    store, clock = MemoryStore(), FakeClock()
    await Silences(store, clock).add(window(clock), created_by="ops")

    again = Silences(store, clock)
    await again.load()

    assert [(s.name, s.created_by) for s in again.list()] == [("w", "ops")]
    assert again.active() == (window(clock),)


async def test_an_ended_silence_is_inactive_and_dropped_from_the_store_on_load() -> None:
    store, clock = MemoryStore(), FakeClock()
    silences = Silences(store, clock)
    await silences.add(window(clock, minutes=30), created_by="ops")
    clock.advance(timedelta(minutes=30))

    assert silences.active() == () and silences.list() == []
    await Silences(store, clock).load()
    assert await store.get_meta(META_KEY) == []


async def test_a_stored_row_that_no_longer_validates_is_skipped_not_fatal() -> None:
    store, clock = MemoryStore(), FakeClock()
    await Silences(store, clock).add(window(clock, "good"), created_by="ops")
    rows = await store.get_meta(META_KEY)
    await store.set_meta(META_KEY, [*rows, {"name": "bad", "start": "yesterday"}])

    silences = Silences(store, clock)
    await silences.load()

    assert [s.name for s in silences.list()] == ["good"]


async def test_a_name_in_force_conflicts_and_an_unknown_name_cannot_be_removed() -> None:
    store, clock = MemoryStore(), FakeClock()
    silences = Silences(store, clock)
    await silences.add(window(clock), created_by="ops")

    with pytest.raises(SilenceExists):
        await silences.add(window(clock), created_by="ops")
    with pytest.raises(SilenceNotFound):
        await silences.remove("other", removed_by="ops")
    await silences.remove("w", removed_by="ops")
    assert await store.get_meta(META_KEY) == []

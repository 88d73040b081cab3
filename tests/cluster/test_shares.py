"""Rendezvous hashing: one owner per integration, and a dead member's share alone moves."""

from __future__ import annotations

from collections import Counter

import pytest

from healthd.cluster.shares import Shares, owner
from healthd.store import PostgresStore

IDS = [f"i{n}" for n in range(3000)]


def test_every_replica_computes_the_same_owner_whatever_the_order_of_members() -> None:
    assert [owner(i, [1, 2, 3]) for i in IDS] == [owner(i, [3, 1, 2]) for i in IDS]


def test_the_fleet_is_split_about_evenly() -> None:
    counts = Counter(owner(i, [1, 2, 3]) for i in IDS)

    assert set(counts) == {1, 2, 3}
    assert all(800 < n < 1200 for n in counts.values())


def test_when_a_member_dies_only_its_integrations_move_and_they_move_to_both_survivors() -> None:
    before = {i: owner(i, [1, 2, 3]) for i in IDS}
    after = {i: owner(i, [1, 3]) for i in IDS}

    moved = [i for i in IDS if before[i] != after[i]]
    assert moved == [i for i in IDS if before[i] == 2]
    assert {after[i] for i in moved} == {1, 3}


@pytest.fixture
async def stores(postgres_url: str):  # type: ignore[no-untyped-def]
    opened = [PostgresStore(postgres_url, pool_size=2) for _ in range(2)]
    for store in opened:
        await store.open()
    yield opened
    for store in opened:
        await store.close()


async def test_two_replicas_split_the_fleet_and_the_survivor_takes_all_of_it(
    stores: list[PostgresStore],
) -> None:
    loaded: list[list[str]] = []

    async def load(ids: list[str]) -> None:
        loaded.append(ids)

    first = Shares(stores[0], lambda: IDS[:100], load)
    second = Shares(stores[1], lambda: IDS[:100], load)
    await first.refresh()
    await second.refresh()
    assert sorted(first.mine(IDS[:100]) + second.mine(IDS[:100])) == sorted(IDS[:100])
    assert 0 < first.size < 100

    await stores[1].close()
    loaded.clear()
    await first.refresh()

    assert first.size == 100
    assert sorted(loaded[0]) == sorted(second.mine(IDS[:100]))  # read from the database first


ADDED = "added-by-the-registry"


async def shares_after_an_addition(stores: list[PostgresStore]) -> list[Shares]:
    """Each store's shares of ten integrations, refreshed, then ADDED put in the fleet."""
    fleet = IDS[:10]

    async def load(ids: list[str]) -> None:
        return None

    shares = [Shares(store, lambda: fleet, load) for store in stores]
    for share in shares:
        await share.refresh()
    fleet = [*fleet, ADDED]
    return shares


async def test_an_integration_added_at_run_time_has_one_prober_before_any_refresh(
    stores: list[PostgresStore],
) -> None:
    shares = await shares_after_an_addition(stores)

    probers = [s for s in shares if s.mine([ADDED])]

    assert len(probers) == 1


async def test_an_integration_added_at_run_time_is_read_back_by_all_but_its_prober(
    stores: list[PostgresStore],
) -> None:
    shares = await shares_after_an_addition(stores)

    # Reading it back into its prober would overwrite the run it is making with an older one.
    readers = [s for s in shares if ADDED in s.others()]
    probers = [s for s in shares if s.mine([ADDED])]

    assert len(readers) == 1 and readers != probers

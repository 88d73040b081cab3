"""Engines of several replicas on one PostgreSQL: one evaluates at a time, none pages twice."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import pytest

from healthd.alerts.engine import AlertEngine
from healthd.clock import FakeClock
from healthd.cluster.lease import AlertLease
from healthd.store import PostgresStore
from tests._postgres import PostgresServer
from tests.alerts.test_rules import BRIDGE_KEY, OK, T0, World, bridge_down, bridge_world, sent

Replica = Callable[[World, float], Awaitable[tuple[AlertEngine, AlertLease, PostgresStore]]]


@pytest.fixture
async def replica(postgres_url: str) -> AsyncIterator[Replica]:
    """An engine with its own store and lease on this test's database, over `world`."""
    stores: list[PostgresStore] = []
    clock = FakeClock(T0 + timedelta(minutes=11))

    async def make(
        world: World, lease_seconds: float
    ) -> tuple[AlertEngine, AlertLease, PostgresStore]:
        store = PostgresStore(postgres_url, pool_size=2)
        await store.open()
        stores.append(store)
        lease = AlertLease(store, seconds=lease_seconds)
        engine = AlertEngine(
            snapshot=lambda: (world.integrations, world.states, world.results),
            store=store,
            settings=world.settings,
            clock=clock,
            lease=lease,
        )
        await engine.load()
        return engine, lease, store

    yield make
    for store in stores:
        await store.close()


async def test_only_the_lease_holder_evaluates(replica: Replica) -> None:
    world = bridge_world()
    bridge_down(world)
    first, first_lease, store = await replica(world, 30)
    second, second_lease, _ = await replica(world, 30)

    assert sent(await first.evaluate()) == [("trigger", BRIDGE_KEY)]
    assert (await second.evaluate()).empty

    assert (first_lease.held, second_lease.held) == (True, False)
    assert await store.outbox_pending() == {"pagerduty": 1}


async def test_a_replica_taking_the_lease_over_reads_the_open_incidents_and_does_not_page_again(
    replica: Replica,
) -> None:
    world = bridge_world()
    bridge_down(world)
    first, first_lease, store = await replica(world, 30)
    second, _, _ = await replica(world, 30)
    assert sent(await first.evaluate()) == [("trigger", BRIDGE_KEY)]

    await first_lease.release()  # the holder stops; the bridge is still down

    assert (await second.evaluate()).empty
    world.set("bridge-dc1", OK)
    assert sent(await second.evaluate()) == [("resolve", BRIDGE_KEY)]
    assert await store.outbox_pending() == {"pagerduty": 2}


async def test_a_replica_whose_lease_ran_out_before_its_write_queues_nothing(
    replica: Replica,
) -> None:
    # A lease of 0 s has expired by the time the plan is written: the same as a replica
    # paused (SIGSTOP) between taking the lease and writing what it decided.
    world = bridge_world()
    bridge_down(world)
    stale, stale_lease, store = await replica(world, 0)

    assert (await stale.evaluate()).empty

    assert not stale_lease.held
    assert await store.open_incidents() == []
    assert await store.outbox_pending() == {}


async def test_after_a_fenced_off_plan_the_new_holder_pages_once(replica: Replica) -> None:
    world = bridge_world()
    bridge_down(world)
    stale, _, store = await replica(world, 0)
    current, _, _ = await replica(world, 30)
    assert (await stale.evaluate()).empty

    assert sent(await current.evaluate()) == [("trigger", BRIDGE_KEY)]
    assert (await stale.evaluate()).empty  # the lease is held by the other now
    assert await store.outbox_pending() == {"pagerduty": 1}


async def test_a_replica_without_the_lease_shows_the_incidents_the_holder_opened(
    replica: Replica,
) -> None:
    world = bridge_world()
    bridge_down(world)
    holder, _, _ = await replica(world, 30)
    other, _, _ = await replica(world, 30)  # loaded before anything was open
    assert (await holder.evaluate()).opened

    assert (await other.evaluate()).empty

    assert other.alert_view().open_incidents == {"bridge_unreachable": 1}


def refuse_connections(server: PostgresServer, database: str, refuse: bool) -> None:
    """The database refuses new connections and its open ones are ended (and waited for,
    up to 10 s each): this test's own database goes away, the server stays up."""
    server.psql(f"ALTER DATABASE {database} ALLOW_CONNECTIONS {'false' if refuse else 'true'}")
    if refuse:
        server.psql(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
            f" WHERE datname = '{database}'"
        )


async def test_a_holder_cut_off_from_the_database_does_not_show_the_lease_held(
    replica: Replica, postgres_server: PostgresServer, postgres_url: str
) -> None:
    """While the holder cannot renew it evaluates nothing, and says so: the gauge that
    HealthdAlertLeaseUnheld sums reads `held`; once the database answers, it holds again."""
    world = bridge_world()
    engine, lease, _ = await replica(world, 60)
    await engine.evaluate()
    assert lease.held
    database = postgres_url.rsplit("/", 1)[-1]

    refuse_connections(postgres_server, database, True)
    try:
        assert await engine.step() is None  # the renewal failed: nothing evaluated
        assert not lease.held
    finally:
        refuse_connections(postgres_server, database, False)

    await engine.step()
    assert lease.held

"""Live checks across replicas: two stores on one real PostgreSQL, the runs counted here."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from structlog.testing import capture_logs

from healthd.cluster.checks import CheckNotAnswered, LiveChecks
from healthd.errors import IntegrationNotFound
from healthd.store import PostgresStore

WAIT = 30.0  # seconds: a bound, never a timing


class Replica:
    """One store's LiveChecks, owning `owned`; its runs last until `release` is set."""

    def __init__(self, store: PostgresStore, owned: set[str]) -> None:
        self.runs: Counter[str] = Counter()
        self.read: list[str] = []
        self.heard: list[str] = []  # every message this replica heard
        self.release = asyncio.Event()
        self.release.set()
        self._running: dict[str, asyncio.Task[None]] = {}
        self.checks = LiveChecks(store, owns=owned.__contains__, run=self.run, read_back=self.back)

    async def run(self, integration_id: str) -> None:
        """As the runner's `run_once`: a run under way is joined; "gone" was removed."""
        if integration_id == "gone":
            raise IntegrationNotFound(integration_id)
        task = self._running.get(integration_id)
        if task is None:
            self.runs[integration_id] += 1
            task = asyncio.create_task(self._lasting())
            self._running[integration_id] = task
            task.add_done_callback(lambda _t: self._running.pop(integration_id, None))
        await asyncio.shield(task)

    async def _lasting(self) -> None:
        await self.release.wait()

    def hear(self, message: str) -> None:
        self.heard.append(message)
        self.checks.heard(message)

    async def back(self, integration_ids: list[str]) -> None:
        self.read += integration_ids


@pytest.fixture
async def pair(postgres_url: str) -> AsyncIterator[tuple[Replica, Replica]]:
    """An owner of `i1` and a replica that owns nothing, both listening."""
    stores = [PostgresStore(postgres_url, pool_size=2) for _ in range(2)]
    replicas = (Replica(stores[0], {"i1", "gone"}), Replica(stores[1], set()))
    listening = [asyncio.Event(), asyncio.Event()]
    for store, replica, ready in zip(stores, replicas, listening, strict=True):
        await store.open()
        store.watch_meta(lambda key, e=ready: e.set() if key is None else None, replica.hear)
    async with asyncio.timeout(WAIT):
        for ready in listening:
            await ready.wait()
    yield replicas
    for store, replica in zip(stores, replicas, strict=True):
        await replica.checks.close()
        await store.close()


async def test_a_check_asked_of_another_replica_is_run_by_the_owner_and_read_back(
    pair: tuple[Replica, Replica],
) -> None:
    owner, other = pair

    async with asyncio.timeout(WAIT):
        await other.checks.check("i1", answer_within=WAIT)

    assert (owner.runs, other.runs) == (Counter(i1=1), Counter())
    assert other.read == ["i1"]


async def test_checks_asked_of_both_replicas_while_one_runs_join_it(
    pair: tuple[Replica, Replica],
) -> None:
    owner, other = pair
    owner.release.clear()  # the owner's run lasts until both have asked

    async with asyncio.timeout(WAIT):
        here = asyncio.ensure_future(owner.checks.check("i1", answer_within=WAIT))
        there = asyncio.ensure_future(other.checks.check("i1", answer_within=WAIT))
        while owner.runs["i1"] == 0 or "check i1" not in owner.heard:
            await asyncio.sleep(0.01)
        owner.release.set()
        await asyncio.gather(here, there)

    assert owner.runs == Counter(i1=1)


async def test_a_check_nobody_owns_is_not_answered_and_says_so(
    pair: tuple[Replica, Replica],
) -> None:
    _owner, other = pair

    with pytest.raises(CheckNotAnswered, match="i2: its owner did not run the check"):
        await other.checks.check("i2", answer_within=0.5)
    assert other.read == []


async def test_a_check_of_an_integration_removed_as_it_is_asked_is_not_answered(
    pair: tuple[Replica, Replica],
) -> None:
    owner, other = pair

    with capture_logs() as logs:
        with pytest.raises(CheckNotAnswered):
            await other.checks.check("gone", answer_within=0.5)
        async with asyncio.timeout(WAIT):  # the owner heard it, and logged why not
            while not any(e["event"] == "live_check_not_answered" for e in logs):
                await asyncio.sleep(0.01)

    assert "check gone" in owner.heard
    assert [e["integration"] for e in logs if e["event"] == "live_check_not_answered"] == ["gone"]

"""A store that cannot write, and a database file deleted or replaced, under the real daemon.

Writes fail through `FailingStore`, a Store wrapper given to the Daemon (no patching of
internals): while its flag is set every write raises StoreError, as a full disk does.
The bridge goes down meanwhile; healthd must keep its state machine moving in memory, page
from memory, say its store is failing, and write what is pending once the store is back,
without sending any event twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from healthd.clock import FakeClock
from healthd.errors import StoreError
from healthd.model import (
    AlertEvent,
    Incident,
    IntegrationState,
    OutboxItem,
    ProbeResult,
    Status,
    Transition,
)
from healthd.sim.app import SimulatorThread
from healthd.sim.client import SimClient
from healthd.store import MemoryStore
from tests.conftest import base_config, bridge, running_daemon
from tests.e2e.test_bridge_paging import (
    BRIDGE,
    DEDUP,
    bridge_for,
    drained,
    eventually,
    get_json,
    metrics,
    probe,
    resolves,
    triggers,
)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("secrets_env")]

STORE_KEY = "healthd/store_failing"


class FailingStore(MemoryStore):
    """A MemoryStore whose writes raise StoreError while `failing` is set (a full disk)."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = False

    def _check(self, operation: str) -> None:
        if self.failing:
            raise StoreError(f"test store: {operation} failed: database or disk is full")

    async def record_run(
        self, state: IntegrationState, result: ProbeResult, transitions: Sequence[Transition]
    ) -> None:
        self._check("record_run")
        await super().record_run(state, result, transitions)

    async def apply_alerts(
        self,
        *,
        opened: Sequence[Incident],
        resolved: Sequence[tuple[str, datetime]],
        events: Sequence[tuple[str, AlertEvent]],
        now: datetime,
    ) -> None:
        self._check("apply_alerts")
        await super().apply_alerts(opened=opened, resolved=resolved, events=events, now=now)

    async def claim_due(self, now: datetime, limit: int = 50) -> list[OutboxItem]:
        self._check("claim_due")
        return await super().claim_due(now, limit)

    async def mark_sent(self, item_id: int, now: datetime) -> None:
        self._check("mark_sent")
        await super().mark_sent(item_id, now)


async def readyz(url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.get(url + "/readyz") as r:
        return r.status, await r.json(content_type=None)


def keys(events: list[dict[str, Any]]) -> list[str]:
    return sorted(e["body"]["dedup_key"] for e in events)


async def test_while_writes_fail_the_bridge_still_pages_and_healthd_says_its_store_fails(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    clock = FakeClock()
    store = FailingStore()
    async with running_daemon(base_config(sim, [bridge(sim)]), clock=clock, store=store) as d:
        await probe(d, clock)
        store.failing = True
        await bridge_for(d, clock, sim_client, "offline", 12)
        await eventually(lambda: DEDUP in keys(triggers(sim_client)))
        await d.outbox.run_once()

        status, body = await readyz(d.url)
        assert status == 503 and "store is failing" in body["detail"]
        assert "disk is full" in body["detail"]
        assert "healthd_store_healthy 0.0" in await metrics(d)
        view = await get_json(d, f"/api/v1/integrations/{BRIDGE}")
        assert view["status"] == "unreachable"  # not the stale ok the store holds
        assert (await store.load_states())[BRIDGE].status is Status.OK
        assert keys(triggers(sim_client)) == sorted([DEDUP, STORE_KEY])

        store.failing = False
        await probe(d, clock)  # the bridge still down: its run is written with the rest
        await drained(d)
        assert (await readyz(d.url))[0] == 200
        stored = (await store.load_states())[BRIDGE]
        assert stored.status is Status.UNREACHABLE and stored.unreachable_since is not None
        assert [i.dedup_key for i in await store.open_incidents()] == [DEDUP]

    assert keys(triggers(sim_client)) == sorted([DEDUP, STORE_KEY])  # each sent once
    assert keys(resolves(sim_client)) == [STORE_KEY]


async def test_a_deleted_database_file_keeps_the_open_incident_across_a_restart(
    sim: SimulatorThread, sim_client: SimClient, tmp_path: Path
) -> None:
    path = tmp_path / "healthd.db"
    doc = base_config(sim, [bridge(sim)], store=f"sqlite:///{path}")
    clock = FakeClock()
    async with running_daemon(doc, clock=clock) as d:
        await bridge_for(d, clock, sim_client, "offline", 12)
        await eventually(lambda: triggers(sim_client))
        for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            name.unlink(missing_ok=True)
        await probe(d, clock)
        assert path.exists()

    async with running_daemon(doc, clock=clock) as d:
        assert [i.dedup_key for i in await d.store.open_incidents()] == [DEDUP]
        await bridge_for(d, clock, sim_client, "ok", 3)
        await eventually(lambda: resolves(sim_client))
        await drained(d)

    assert keys(resolves(sim_client)) == [DEDUP]


async def test_a_replaced_database_file_makes_healthd_not_ready_naming_it(
    sim: SimulatorThread, sim_client: SimClient, tmp_path: Path
) -> None:
    path = tmp_path / "healthd.db"
    doc = base_config(sim, [bridge(sim)], store=f"sqlite:///{path}")
    clock = FakeClock()
    async with running_daemon(doc, clock=clock) as d:
        await probe(d, clock)
        other = tmp_path / "restored.db"
        other.write_bytes(b"")
        other.replace(path)
        await probe(d, clock)
        status, body = await readyz(d.url)

    assert status == 503
    assert "replaced" in body["detail"] and str(path) in body["detail"]

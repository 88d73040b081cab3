"""Registry changes take effect at once on a running, scheduling daemon (real time).

Intervals are an hour, so every run seen here is the one the change itself started.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from healthd.daemon import Daemon
from healthd.sim.app import SimulatorThread
from tests.api.conftest import call
from tests.conftest import running_daemon
from tests.registry.conftest import body, registry_config, send

pytestmark = pytest.mark.usefixtures("registry_env")
PATH = "/api/v1/integrations/crm-1"


def config(sim: SimulatorThread, db: Path) -> dict[str, Any]:
    doc = registry_config(sim, db)
    doc["defaults"] = {**doc["defaults"], "interval": "1h", "failure_threshold": 1}
    return doc


async def runs_of(d: Daemon, integration_id: str, count: int) -> None:
    """Until the runner has `count` results for the id after a change (bounded)."""
    async with asyncio.timeout(10):
        while (state := d.runner.states.get(integration_id)) is None or (
            state.consecutive_failures + state.consecutive_successes < count
        ):
            await asyncio.sleep(0.02)


async def test_a_new_integration_is_probed_at_once(sim: SimulatorThread, tmp_path: Path) -> None:
    async with running_daemon(config(sim, tmp_path / "h.db"), schedule=True) as d:
        await send(d.url, "PUT", PATH, body(sim, "a1"))
        await runs_of(d, "crm-1", 1)
        shown = await call(d.url, "GET", PATH)

    assert shown.json["status"] == "ok"


async def test_changed_credentials_are_probed_again_at_once_keeping_the_state(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    async with running_daemon(config(sim, tmp_path / "h.db"), schedule=True) as d:
        await send(d.url, "PUT", PATH, body(sim, "a1", credentials={"password": "wrong-one"}))
        await runs_of(d, "crm-1", 1)
        failed = await call(d.url, "GET", PATH)
        await send(d.url, "PUT", PATH, body(sim, "a1"))
        async with asyncio.timeout(10):
            while d.runner.states["crm-1"].consecutive_successes < 1:
                await asyncio.sleep(0.02)
        fixed = await call(d.url, "GET", PATH)

    assert failed.json["status"] == "failing"
    assert fixed.json["last_result_status"] == "ok"
    assert [t["to_status"] for t in fixed.json["transitions"]] == ["failing"]  # history kept


async def test_a_removed_integration_leaves_metrics_and_its_incident_resolves(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    paging = body(sim, "a1", page=True, credentials={"password": "wrong-one"})
    async with running_daemon(config(sim, tmp_path / "h.db"), schedule=True) as d:
        await send(d.url, "PUT", PATH, paging)
        await runs_of(d, "crm-1", 1)
        await d.engine.evaluate()
        opened = await call(d.url, "GET", "/api/v1/incidents?open=true")
        before = await call(d.url, "GET", "/metrics", token=None)
        await send(d.url, "DELETE", PATH)
        for _ in range(2):  # whichever of these (or the engine's own tick) resolves it
            await d.engine.evaluate()
        incidents = await call(d.url, "GET", "/api/v1/incidents")
        # Scrapes within `MetricsEndpoint.max_age` (1 s) share one rendering.
        async with asyncio.timeout(5):
            while 'integration="crm-1"' in (await call(d.url, "GET", "/metrics")).text:
                await asyncio.sleep(0.1)

    assert [i["integration"] for i in opened.json["incidents"]] == ["crm-1"]
    assert 'integration="crm-1"' in before.text
    # One occurrence, resolved: resolved once, never opened again.
    assert [(i["integration"], i["open"]) for i in incidents.json["incidents"]] == [
        ("crm-1", False)
    ]

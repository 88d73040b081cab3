"""Silences follow the live registry: an integration registered through the API can be
silenced as soon as its PUT answers (by id, by its tenant), and a removed one no longer,
over real HTTP against the daemon."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from healthd.sim.app import SimulatorThread
from tests.api.conftest import Answer, assert_problem
from tests.conftest import running_daemon
from tests.registry.conftest import body, registry_config, send

pytestmark = pytest.mark.usefixtures("registry_env")

NEW = "/api/v1/integrations/crm-initech-1"


async def silence(url: str, name: str, **selectors: Any) -> Answer:
    return await send(
        url, "POST", "/api/v1/silences", {"name": name, "duration": "1h", **selectors}
    )


async def test_a_registered_integration_can_be_silenced_at_once_by_id_and_tenant(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    async with running_daemon(registry_config(sim, tmp_path / "h.db")) as d:
        put = await send(d.url, "PUT", NEW, body(sim, "i1", tenant="initech"))
        by_id = await silence(d.url, "by-id", integrations=["crm-initech-1"])
        by_tenant = await silence(d.url, "by-tenant", tenants=["initech"])

    assert put.status == 201, put.text
    assert by_id.status == 201, by_id.text
    assert by_tenant.status == 201, by_tenant.text


async def test_a_removed_integration_can_no_longer_be_silenced(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    doc = registry_config(sim, tmp_path / "h.db")
    async with running_daemon(doc) as d:
        await send(d.url, "PUT", NEW, body(sim, "i1", tenant="initech"))
    # Stored, so this daemon starts with it; then it goes.
    async with running_daemon(doc) as d:
        deleted = await send(d.url, "DELETE", NEW)
        by_id = await silence(d.url, "by-id", integrations=["crm-initech-1"])
        by_tenant = await silence(d.url, "by-tenant", tenants=["initech"])

    assert deleted.status == 204, deleted.text
    assert "integrations: unknown 'crm-initech-1'" in assert_problem(by_id, 400)["detail"]
    assert "tenants: unknown 'initech'" in assert_problem(by_tenant, 400)["detail"]

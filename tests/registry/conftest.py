"""The registry tests' daemon: the API fleet's config with a registry key and an SQLite file.

`body()` is one registry PUT body for a simulator bridge, with literal credentials (the
CRM holds them); `send()` one JSON request to the daemon over real HTTP.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from healthd.sim.app import SimulatorThread
from healthd.sim.fixtures import integration_entry
from healthd.vault import new_key
from tests.api.conftest import Answer, auth, fleet_config
from tests.conftest import ADMIN_TOKEN

REGISTRY_KEY = new_key()
REGISTRY_TOKEN = "registry-token-for-tests-0123456789"
# What a planted credential looks like: found anywhere, it leaked.
PLANTED = "PLANTED-secret-7f3a9c0e1d"


@pytest.fixture
def registry_env(monkeypatch: pytest.MonkeyPatch, secrets_env: dict[str, str]) -> None:
    monkeypatch.setenv("HEALTHD_TEST_REGISTRY_KEY", REGISTRY_KEY)
    monkeypatch.setenv("HEALTHD_TEST_REGISTRY_TOKEN", REGISTRY_TOKEN)


def registry_config(sim: SimulatorThread, db: Path, **extra: Any) -> dict[str, Any]:
    doc = fleet_config(sim, **extra)
    doc["store"] = f"sqlite:///{db}"
    doc["registry"] = {"keys": ["env:HEALTHD_TEST_REGISTRY_KEY"]}
    doc["api"]["tokens"].append(
        {"name": "crm", "role": "registry", "token": "env:HEALTHD_TEST_REGISTRY_TOKEN"}
    )
    return doc


def body(
    sim: SimulatorThread, target: str, *, tenant: str = "acme", **extra: Any
) -> dict[str, Any]:
    """A registry body for the simulator's bridge `target` (its password given literally)."""
    entry = integration_entry("imessage_bridge", sim.http_url, target, id="-", tenant=tenant)
    del entry["id"]
    return entry | extra


async def send(
    url: str,
    method: str,
    path: str,
    payload: Any = None,
    *,
    token: str | None = ADMIN_TOKEN,
    headers: dict[str, str] | None = None,
) -> Answer:
    async with asyncio.timeout(30), aiohttp.ClientSession() as session:
        data = None if payload is None else json.dumps(payload)
        hdrs = {**auth(token), "Content-Type": "application/json", **(headers or {})}
        async with session.request(method, url + path, data=data, headers=hdrs) as r:
            return Answer(r.status, dict(r.headers), await r.text())

"""A reload's new defaults reach the registry API's integrations that leave a value unset,
and only those values; a default that a registered integration cannot take refuses the
file as a bad file does. The daemon in-process on a config file, registrations over real
HTTP, the reload as SIGHUP calls it (`Reloader.reload`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from healthd import config as config_module
from healthd.daemon import Daemon
from healthd.model import Integration
from healthd.sim.app import SimulatorThread
from tests.conftest import write_config
from tests.registry.conftest import body, registry_config, send

pytestmark = pytest.mark.usefixtures("registry_env")

PLAIN, OWN = "crm-acme-plain", "crm-acme-own"
OWN_VALUES = {"interval": "30s", "timeout": "20s", "failure_threshold": 5}


def registry_file(sim: SimulatorThread, tmp_path: Path, **defaults: Any) -> dict[str, Any]:
    doc = registry_config(sim, tmp_path / "h.db")
    doc["defaults"] = {"interval": "60s", "timeout": "10s", "failure_threshold": 3} | defaults
    return doc


@asynccontextmanager
async def registered(sim: SimulatorThread, tmp_path: Path) -> AsyncIterator[Reload]:
    """The daemon on a config file, with PLAIN (sets nothing) and OWN (sets everything)
    registered over HTTP; `Reload` writes new defaults into the file and reloads."""
    path = write_config(tmp_path / "healthd.yaml", registry_file(sim, tmp_path))
    async with Daemon(config_module.load(str(path)), schedule=False) as d:
        for iid, extra in ((PLAIN, {}), (OWN, OWN_VALUES)):
            put = await send(d.url, "PUT", f"/api/v1/integrations/{iid}", body(sim, iid, **extra))
            assert put.status == 201, put.text
        yield Reload(d, lambda **new: write_config(path, registry_file(sim, tmp_path, **new)))


@dataclass
class Reload:
    d: Daemon
    write: Callable[..., Path]

    def __call__(self, **defaults: Any) -> bool:
        self.write(**defaults)
        return self.d.reloader.reload()


def settings(integration: Integration) -> tuple[timedelta, timedelta, int, int]:
    t = integration.thresholds
    return integration.interval, integration.timeout, t.failure_threshold, t.success_threshold


async def test_new_defaults_reach_registered_integrations_where_they_set_nothing(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    async with registered(sim, tmp_path) as reload:
        d = reload.d
        applied = reload(interval="2m", timeout="15s", failure_threshold=4, success_threshold=1)
        plain, own = d.runner.integrations[PLAIN], d.runner.integrations[OWN]
        # A registration after the reload is built under the new defaults too.
        later = await send(d.url, "PUT", "/api/v1/integrations/crm-later", body(sim, "later"))
        after = d.runner.integrations["crm-later"]

    assert applied is True
    assert settings(plain) == (timedelta(minutes=2), timedelta(seconds=15), 4, 1)
    assert settings(own) == (timedelta(seconds=30), timedelta(seconds=20), 5, 1)
    assert later.status == 201 and settings(after) == settings(plain)


async def test_defaults_a_registered_integration_cannot_take_keep_the_running_config(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    async with registered(sim, tmp_path) as reload:
        d = reload.d
        slow = body(sim, "slow", timeout="20s")
        assert (await send(d.url, "PUT", "/api/v1/integrations/crm-slow", slow)).status == 201
        before = {iid: settings(i) for iid, i in d.runner.integrations.items()}
        # Its own timeout of 20 s is not below a default interval of 15 s.
        applied = reload(interval="15s")
        running = d.reloader.running.defaults
        after = {iid: settings(i) for iid, i in d.runner.integrations.items()}

    assert applied is False
    assert after == before
    assert running.interval == timedelta(seconds=60)


async def test_concurrency_and_jitter_wait_for_a_restart(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    async with registered(sim, tmp_path) as reload:
        d = reload.d
        before = settings(d.runner.integrations[PLAIN])
        applied = reload(concurrency=7, jitter="1s")
        running = d.reloader.running.defaults

    assert applied is True
    assert (running.concurrency, running.jitter) == (100, timedelta(seconds=5))
    assert settings(d.runner.integrations[PLAIN]) == before

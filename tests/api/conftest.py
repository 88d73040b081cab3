"""The API tests' fleet, a small HTTP helper, and a daemon in a thread for synchronous tests.

The fleet: bridges owned by two customer tenants and one by `platform`, each its own
target in the simulator, so a test can break one tenant's bridge and leave the others.
Async tests run the daemon in their own loop (`running_daemon`); hypothesis and
schemathesis drive a synchronous client, so they get `DaemonThread`, the same daemon on
an event loop of its own.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp
import pytest
import yaml
import yarl

from healthd import config as config_module
from healthd.daemon import Daemon
from healthd.sim.app import SimulatorThread
from tests.conftest import (
    ADMIN_TOKEN,
    BRIDGE_PASSWORD,
    ROUTING_KEY,
    TENANT_TOKENS,
    base_config,
    bridge,
)

ACME, GLOBEX, PLATFORM = "acme", "globex", "platform"
FLEET = {
    "bridge-acme1": ACME,
    "bridge-acme2": ACME,
    "bridge-globex1": GLOBEX,
    "bridge-dc1": PLATFORM,
}
ACME_TOKEN = TENANT_TOKENS[ACME]
GLOBEX_TOKEN = TENANT_TOKENS[GLOBEX]


def fleet(sim: SimulatorThread, **extra: Any) -> list[dict[str, Any]]:
    """The four bridges; `extra` applies to all of them (timeouts, thresholds)."""
    return [
        bridge(sim, iid.removeprefix("bridge-"), tenant=tenant, **extra)
        for iid, tenant in FLEET.items()
    ]


def fleet_config(sim: SimulatorThread, *, api: dict[str, Any] | None = None, **extra: Any) -> Any:
    doc = base_config(sim, fleet(sim, **extra))
    if api:
        doc["api"] = {**doc["api"], **api}
    return doc


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    text: str

    @property
    def json(self) -> Any:
        return json.loads(self.text)

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0]


def auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


async def call(
    url: str,
    method: str,
    path: str,
    token: str | None = ADMIN_TOKEN,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One request to the daemon, bounded; `path` is sent as written (encoded=True)."""
    async with asyncio.timeout(30), aiohttp.ClientSession() as session:
        target = yarl.URL(url + path, encoded=True)
        async with session.request(method, target, headers={**auth(token), **(headers or {})}) as r:
            return Answer(r.status, dict(r.headers), await r.text())


def sync_call(url: str, method: str, path: str, token: str | None = ADMIN_TOKEN) -> Answer:
    """`call` for synchronous tests (hypothesis): stdlib urllib, bounded by a timeout."""
    request = urllib.request.Request(
        url + path, method=method, headers=auth(token), data=b"" if method == "POST" else None
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Answer(response.status, dict(response.headers), response.read().decode())
    except urllib.error.HTTPError as exc:
        with exc:
            return Answer(exc.code, dict(exc.headers), exc.read().decode())


def assert_problem(answer: Answer, status: int) -> dict[str, Any]:
    """An RFC 9457 problem document with this status; returns its body."""
    assert answer.status == status, answer.text
    assert answer.content_type == "application/problem+json"
    body = answer.json
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["type"] == "about:blank"
    return dict(body)


class DaemonThread:
    """`Daemon` on its own event loop in a thread; after start, one sweep and one evaluation
    of the alert rules have run (so incidents exist where the simulator says so)."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self._config = config_module.loads(yaml.safe_dump(doc))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="daemon-thread", daemon=True)
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.url = ""
        self.daemon: Daemon | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._started.set()
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with Daemon(self._config, schedule=False) as daemon:
            await daemon.runner.run_many(list(daemon.runner.integrations))
            await daemon.engine.evaluate()
            self.daemon, self.url = daemon, daemon.url
            self._started.set()
            await self._stop.wait()

    def __enter__(self) -> DaemonThread:
        self._thread.start()
        if not self._started.wait(30) or self._error is not None:
            raise AssertionError(f"daemon thread did not start: {self._error!r}")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        assert not self._thread.is_alive(), "daemon thread did not stop"


@pytest.fixture(scope="module")
def module_env() -> Iterator[pytest.MonkeyPatch]:
    """The `secrets_env` variables for a module-scoped daemon; set more with `setenv`."""
    values = {
        "HEALTHD_TEST_ROUTING_KEY": ROUTING_KEY,
        "HEALTHD_TEST_BRIDGE_PASSWORD": BRIDGE_PASSWORD,
        "HEALTHD_TEST_ADMIN_TOKEN": ADMIN_TOKEN,
        **{f"HEALTHD_TEST_TOKEN_{t.upper()}": v for t, v in TENANT_TOKENS.items()},
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in values.items():
            mp.setenv(key, value)
        yield mp

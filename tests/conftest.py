"""Shared fixtures: the simulator as a real loopback server, config files, daemons.

The simulator runs once per session in its own thread (`SimulatorThread`) and is reset
before each test that uses it. Daemons run either in-process (`running_daemon`, usually
with a FakeClock and the scheduler off, so a test steps time by hand) or as a real
subprocess (`DaemonProcess`, for SIGKILL and real-time tests).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from healthd import config as config_module
from healthd.clock import FakeClock
from healthd.daemon import Daemon
from healthd.sim.app import SimulatorThread
from healthd.sim.bridge import DEFAULT_PASSWORD as BRIDGE_PASSWORD
from healthd.sim.client import SimClient
from healthd.sim.fixtures import integration_entry
from tests._postgres import PostgresServer, start_server

ROUTING_KEY = "R0SIMULATEDROUTINGKEY0000000TEST"  # 32 chars, the shape PagerDuty requires
ADMIN_TOKEN = "admin-token-for-tests-0123456789"
TENANT_TOKENS = {
    "acme": "acme-token-for-tests-0123456789",
    "globex": "globex-token-for-tests-012345",
}
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def sim_thread() -> Iterator[SimulatorThread]:
    with SimulatorThread() as sim:
        yield sim


@pytest.fixture
def sim(sim_thread: SimulatorThread) -> SimulatorThread:
    sim_thread.client().reset()
    return sim_thread


@pytest.fixture
def sim_client(sim: SimulatorThread) -> SimClient:
    return sim.client()


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {
        "HEALTHD_TEST_ROUTING_KEY": ROUTING_KEY,
        "HEALTHD_TEST_BRIDGE_PASSWORD": BRIDGE_PASSWORD,
        "HEALTHD_TEST_ADMIN_TOKEN": ADMIN_TOKEN,
        **{f"HEALTHD_TEST_TOKEN_{t.upper()}": v for t, v in TENANT_TOKENS.items()},
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


def bridge(
    sim: SimulatorThread,
    name: str = "dc1",
    *,
    id: str | None = None,
    tenant: str = "platform",
    **extra: Any,
) -> dict[str, Any]:
    return integration_entry(
        "imessage_bridge",
        sim.http_url,
        name,
        id=id or f"bridge-{name}",
        tenant=tenant,
        credentials={"password": "env:HEALTHD_TEST_BRIDGE_PASSWORD"},
        **extra,
    )


def base_config(
    sim: SimulatorThread, integrations: list[dict[str, Any]], **overrides: Any
) -> dict[str, Any]:
    """A config pointed at the simulator: PagerDuty over TLS with the simulator's CA."""
    doc: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "store": "memory:",
        "defaults": {
            "interval": "60s",
            "timeout": "2s",
            "jitter": "0s",
            "failure_threshold": 3,
            "success_threshold": 2,
        },
        "alerting": {
            "pagerduty": {
                "routing_key": "env:HEALTHD_TEST_ROUTING_KEY",
                "events_url": sim.https_url,
                "ca_bundle": str(sim.ca_path),
                "timeout": "5s",
            },
            "outbox": {"backoff_initial": "1s", "backoff_max": "2s"},
        },
        "api": {
            "tokens": [
                {"name": "ops", "role": "admin", "token": "env:HEALTHD_TEST_ADMIN_TOKEN"},
                *[
                    {
                        "name": f"{t}-settings",
                        "tenant": t,
                        "token": f"env:HEALTHD_TEST_TOKEN_{t.upper()}",
                    }
                    for t in TENANT_TOKENS
                ],
            ]
        },
        "integrations": integrations,
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    return doc


def write_config(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@asynccontextmanager
async def running_daemon(
    doc: dict[str, Any], *, clock: FakeClock | None = None, schedule: bool = False, **kw: Any
) -> AsyncIterator[Daemon]:
    cfg = config_module.loads(yaml.safe_dump(doc))
    async with Daemon(cfg, clock=clock, schedule=schedule, **kw) as daemon:
        yield daemon


def wait_until(
    predicate: Any, timeout: float, interval: float = 0.05, what: str = "condition"
) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class DaemonProcess:
    """`healthd run` as a real subprocess; a thread collects its JSON log lines from stderr."""

    def __init__(
        self, config_path: Path, env: dict[str, str], preexec_fn: Callable[[], Any] | None = None
    ) -> None:
        self.config_path = config_path
        self.env = {**os.environ, **env}
        self.preexec_fn = preexec_fn  # run in the child before exec (e.g. a lower rlimit)
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._started = threading.Event()

    def start(self, timeout: float = 20.0) -> DaemonProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "healthd", "run", "--config", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            cwd=REPO,
            preexec_fn=self.preexec_fn,
        )
        threading.Thread(target=self._read, daemon=True).start()
        if not self._started.wait(timeout):
            self.kill()
            raise AssertionError(f"healthd did not start within {timeout}s: {self.raw[-20:]}")
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.raw.append(line)
            event = _json_line(line)
            if event is None:
                continue
            self.lines.append(event)
            if event.get("event") == "started":
                self.url = event["listen"]
                self._started.set()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode


def _json_line(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL cluster for the session (`tests._postgres`); skips without it,
    fails under CI."""
    server = start_server()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A `postgresql://` URL of a new empty database of this test's own."""
    return postgres_server.dsn(postgres_server.create_database())

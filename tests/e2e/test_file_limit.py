"""`healthd run` at a 256-file limit, flooded by 306 clients that never send a request.

Before the listener was bounded, these used every descriptor the process had: /healthz and
the API stopped answering, and the bridge probe, which needs a socket of its own, failed
as `bridge.unreachable`, so a healthy bridge paged. Now the clients beyond the listener's
share of the file limit wait in the backlog, each is cut off after `api.read_timeout`, and
the probes keep their sockets: the bridge stays ok and nothing pages.
"""

from __future__ import annotations

import contextlib
import json
import resource
import selectors
import socket
import threading
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yarl

from healthd.sim.app import SimulatorThread
from healthd.sim.client import SimClient
from tests.conftest import ADMIN_TOKEN, DaemonProcess, base_config, bridge, wait_until, write_config

pytestmark = pytest.mark.e2e

BRIDGE = "bridge-dc1"
FILE_LIMIT = 256
SLOW_CLIENTS = 306


def lower_file_limit() -> None:
    """In the child, before exec: the file limit the daemon starts with."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (FILE_LIMIT, FILE_LIMIT))


class Flood:
    """`count` connections that send nothing; each one the daemon closes is opened again."""

    def __init__(self, url: str, count: int) -> None:
        parsed = yarl.URL(url)
        self._address = (parsed.host, parsed.port)
        self._count = count
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flood", daemon=True)
        self.reopened = 0

    def _open(self, selector: selectors.BaseSelector) -> None:
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(self._address)
        selector.register(sock, selectors.EVENT_READ)

    def _run(self) -> None:
        with selectors.DefaultSelector() as selector:
            for _ in range(self._count):
                self._open(selector)
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=0.1):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    with contextlib.suppress(OSError):
                        if sock.recv(4096):
                            continue
                    selector.unregister(sock)
                    sock.close()
                    self.reopened += 1
                    self._open(selector)
            for key in list(selector.get_map().values()):
                key.fileobj.close()  # type: ignore[union-attr]

    @contextlib.contextmanager
    def running(self) -> Iterator[Flood]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(10)


def get(daemon: DaemonProcess, path: str) -> Any:
    request = urllib.request.Request(
        daemon.url + path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=20) as answer:
        return json.load(answer)


def bridge_now(daemon: DaemonProcess) -> dict[str, Any]:
    return dict(get(daemon, f"/api/v1/integrations/{BRIDGE}"))


def probed_after(daemon: DaemonProcess, before: dict[str, Any]) -> dict[str, Any]:
    """The bridge as the API shows it after its next probe run (bounded)."""
    moment = datetime.fromisoformat(before["last_checked"])
    found: list[dict[str, Any]] = []

    def newer() -> bool:
        found.append(bridge_now(daemon))
        return datetime.fromisoformat(found[-1]["last_checked"]) > moment

    wait_until(newer, timeout=30, what="a probe run during the flood")
    return found[-1]


def test_a_flood_of_slow_clients_at_a_low_file_limit_does_not_page_a_healthy_bridge(
    tmp_path: Path, sim: SimulatorThread, sim_client: SimClient, secrets_env: dict[str, str]
) -> None:
    doc = base_config(
        sim,
        [bridge(sim)],
        defaults={"interval": "1s", "timeout": "0.5s", "jitter": "0s", "failure_threshold": 1},
        api={"read_timeout": "2s"},
    )
    doc["alerting"]["rules"] = {"bridge_unreachable": {"page_after": "0s"}}
    daemon = DaemonProcess(
        write_config(tmp_path / "healthd.yaml", doc), secrets_env, preexec_fn=lower_file_limit
    ).start()
    try:
        first = wait_until(
            lambda: (b := bridge_now(daemon))["last_checked"] and b, timeout=30, what="a probe"
        )
        with Flood(daemon.url, SLOW_CLIENTS).running() as flood:
            seen = [first]
            for _ in range(3):  # three probe runs while the flood goes on
                seen.append(probed_after(daemon, seen[-1]))
            assert get(daemon, "/healthz") == {"status": "ok"}
            assert flood.reopened > 0  # the daemon cut slow clients off, and they came back
    finally:
        assert daemon.stop() == 0

    assert {(s["status"], s["last_result_status"]) for s in seen} == {("ok", "ok")}
    assert all(s["consecutive_failures"] == 0 for s in seen)
    assert sim_client.pagerduty_events() == []

"""`healthd run` that cannot start: exit 3 with one line naming the file or the address.

Each case is a real `healthd run` process. A second daemon on a database another one is
working must refuse before it touches the file (else both page, and each requeues the
other's in-flight outbox rows); a store that is not a database, a missing directory or a
taken port must not restart-loop under systemd with a traceback every 5 s.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from healthd.sim.app import SimulatorThread
from healthd.sim.client import SimClient
from tests.conftest import REPO, DaemonProcess, base_config, bridge, wait_until, write_config
from tests.e2e.test_restart import sent_triggers

pytestmark = pytest.mark.e2e

EXIT_CANNOT_START = 3


def run_once(config: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`healthd run` expected to exit on its own; bounded in case it starts instead."""
    return subprocess.run(
        [sys.executable, "-m", "healthd", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def human_lines(stderr: str) -> list[str]:
    """The lines that are not the JSON log."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("{")]


def assert_refused(done: subprocess.CompletedProcess[str], *names: str) -> str:
    assert done.returncode == EXIT_CANNOT_START, done.stderr
    assert "Traceback" not in done.stderr
    [line] = human_lines(done.stderr)
    assert line.startswith("healthd: cannot start: ")
    for name in names:
        assert name in line
    return line


def test_a_second_daemon_on_the_same_database_refuses_and_the_first_pages_once(
    tmp_path: Path, sim: SimulatorThread, sim_client: SimClient, secrets_env: dict[str, str]
) -> None:
    sim_client.set_scenario("imessage_bridge", "offline", target="dc1")
    db = tmp_path / "healthd.db"
    doc = base_config(
        sim,
        [bridge(sim)],
        store=f"sqlite:///{db}",
        defaults={"interval": "1s", "timeout": "0.5s", "jitter": "0s", "failure_threshold": 2},
    )
    doc["alerting"]["rules"] = {"bridge_unreachable": {"page_after": "2s"}}
    config = write_config(tmp_path / "healthd.yaml", doc)
    first = DaemonProcess(config, secrets_env).start()
    try:
        assert first.proc is not None
        line = assert_refused(run_once(config, secrets_env), str(db), f"pid {first.proc.pid}")
        assert "in use by another healthd" in line

        wait_until(lambda: sent_triggers(first), timeout=30, what="the first daemon's page")
        assert first.proc.poll() is None
        assert [i["trigger_count"] for i in sim_client.pagerduty_incidents()] == [1]
    finally:
        assert first.stop() == 0


def write_store_config(tmp_path: Path, store: Path, listen: str = "127.0.0.1:0") -> Path:
    config = tmp_path / "healthd.yaml"
    config.write_text(f"listen: {listen}\nstore: sqlite:///{store}\n")
    return config


def garbage(tmp_path: Path) -> Path:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"not an sqlite database, only text " * 200)
    return path


def missing_directory(tmp_path: Path) -> Path:
    return tmp_path / "no-such-directory" / "healthd.db"


def unreadable(tmp_path: Path) -> Path:
    """A file healthd may not read. As root chmod does not stop a read, so there the
    database's place is taken by a directory instead."""
    path = tmp_path / "unreadable.db"
    if os.geteuid() == 0:
        path.mkdir()
    else:
        path.write_bytes(b"")
        path.chmod(0)
    return path


@pytest.mark.parametrize("make", [garbage, missing_directory, unreadable])
def test_a_store_that_cannot_be_used_exits_3_naming_the_file(
    tmp_path: Path, make: Callable[[Path], Path]
) -> None:
    store = make(tmp_path)
    assert_refused(run_once(write_store_config(tmp_path, store)), str(store))


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_a_listen_address_in_use_exits_3_naming_the_address(
    tmp_path: Path, taken_port: int
) -> None:
    config = write_store_config(tmp_path, tmp_path / "healthd.db", f"127.0.0.1:{taken_port}")
    line = assert_refused(run_once(config), f"127.0.0.1:{taken_port}", "listen")
    assert "in use" in line

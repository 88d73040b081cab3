"""`healthd demo` tells its whole story on a fresh machine: outage, one page, one resolve."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.e2e


def test_demo_pages_once_and_resolves_once_with_a_shortened_allowance() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "healthd",
            "demo",
            "--listen",
            f"127.0.0.1:{port}",
            "--page-after",
            "4",
            "--duration",
            "90",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr
    assert f"http://127.0.0.1:{port}/" in out and "admin token" in out
    assert out.count("PagerDuty received a trigger") == 1
    assert "iMessage bridge unreachable for" in out
    assert out.count("PagerDuty received the resolve") == 1
    assert "the story is over" in out

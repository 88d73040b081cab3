"""`healthd demo` tells its whole story on a fresh machine: outage, one page, one resolve,
then a failure burst by callback and the tenant's webhook hearing of it once."""

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
    assert "90 x 200, 3 x 403" in out  # 80 statuses and 10 replays taken, 3 forged refused
    assert out.count("acme's webhook received") == 1
    assert "acme's webhook has 1 messages_failing event(s)" in out
    assert "the story is over" in out

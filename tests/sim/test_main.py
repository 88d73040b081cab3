from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from healthd.sim import SimClient
from healthd.sim.tls import client_context

STARTUP_TIMEOUT = 20.0


@pytest.fixture
def standalone(tmp_path):
    ca_out = tmp_path / "ca.pem"
    proc = subprocess.Popen(
        [sys.executable, "-m", "healthd.sim", "--ca-out", str(ca_out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], STARTUP_TIMEOUT)
        assert ready, f"python -m healthd.sim printed nothing in {STARTUP_TIMEOUT}s"
        assert proc.stdout is not None
        yield proc, json.loads(proc.stdout.readline()), ca_out
    finally:
        if proc.poll() is None:
            proc.terminate()  # not kill: the simulator removes its temporary directory
        proc.communicate(timeout=10)


def test_standalone_prints_its_urls_and_serves_the_control_api(standalone):
    _, urls, ca_out = standalone
    assert urls["http_url"].startswith("http://127.0.0.1:")
    assert urls["https_url"].startswith("https://127.0.0.1:")
    assert urls["ca_path"] == str(ca_out)
    assert "pagerduty" in SimClient(urls["http_url"]).describe()["providers"]


def test_standalone_https_is_trusted_through_the_copied_ca(standalone):
    _, urls, ca_out = standalone
    context = client_context(ca_out)
    with urllib.request.urlopen(f"{urls['https_url']}/_sim", timeout=5, context=context) as r:
        assert r.status == 200


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_standalone_stops_cleanly_on_a_signal(standalone, sig):
    proc, _, _ = standalone
    proc.send_signal(sig)
    assert proc.wait(timeout=10) == 0


def test_standalone_removes_its_throwaway_ca_when_stopped():
    proc = subprocess.Popen(
        [sys.executable, "-m", "healthd.sim"], stdout=subprocess.PIPE, text=True
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], STARTUP_TIMEOUT)
        assert ready, f"python -m healthd.sim printed nothing in {STARTUP_TIMEOUT}s"
        assert proc.stdout is not None
        ca_dir = Path(json.loads(proc.stdout.readline())["ca_path"]).parent
        assert ca_dir.is_dir()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert not ca_dir.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)

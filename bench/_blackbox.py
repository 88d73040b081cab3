"""Debian's prometheus-blackbox-exporter as the yardstick for CPU per probe.

The exporter is started on loopback with one module doing a plain HTTP GET, and driven
through its `/probe?target=...&module=...` endpoint at the benchmark's concurrency by an
aiohttp client in the benchmark process. Only the exporter's own CPU (utime + stime from
/proc/<pid>/stat) is counted: that is what running it in place of healthd would cost.
Each of its probes is one HTTP request on a fresh connection (that is how it works).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import aiohttp
from _machine import process_cpu_seconds

BINARY = "prometheus-blackbox-exporter"
MODULE = "http_get"
CONFIG = f"""modules:
  {MODULE}:
    prober: http
    timeout: 10s
    http:
      method: GET
      preferred_ip_protocol: ip4
      valid_status_codes: [200]
"""


def find_binary() -> str | None:
    return shutil.which(BINARY)


def try_install() -> str | None:
    """`apt-get install` the exporter when we are root and it is missing; None if we cannot."""
    if find_binary() or os.geteuid() != 0 or not shutil.which("apt-get"):
        return find_binary()
    cmd = ["apt-get", "install", "-y", "-qq", "prometheus-blackbox-exporter"]
    subprocess.run(cmd, capture_output=True, timeout=300, check=False)
    return find_binary()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class BlackboxRun:
    probes: int
    succeeded: int
    wall: float
    cpu: float

    @property
    def cpu_ms_per_probe(self) -> float:
        return self.cpu / self.probes * 1000


class Blackbox:
    """`with Blackbox(binary) as bb: await bb.drive(targets, concurrency)`."""

    def __init__(self, binary: str) -> None:
        self._binary = binary
        self._dir = tempfile.TemporaryDirectory(prefix="healthd-bench-bb-")
        self._proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> Blackbox:
        config = Path(self._dir.name) / "blackbox.yml"
        config.write_text(CONFIG)
        port = _free_port()
        self._proc = subprocess.Popen(
            [
                self._binary,
                f"--config.file={config}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{port}"
        self._wait_ready(port)
        return self

    def _wait_ready(self, port: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(f"{BINARY} exited with {self._proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{BINARY} did not listen on {port} within {timeout}s")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        self._dir.cleanup()

    async def drive(self, targets: list[str], concurrency: int) -> BlackboxRun:
        """Probe every target once through the exporter, `concurrency` at a time."""
        assert self._proc is not None
        semaphore = asyncio.Semaphore(concurrency)
        connector = aiohttp.TCPConnector(limit=concurrency)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def one(target: str) -> bool:
                async with (
                    semaphore,
                    session.get(
                        f"{self.url}/probe", params={"target": target, "module": MODULE}
                    ) as resp,
                ):
                    return "\nprobe_success 1" in await resp.text()

            await one(targets[0])  # warm up: the exporter's first probe loads its config
            cpu0, t0 = process_cpu_seconds(self._proc.pid), time.perf_counter()
            ok = await asyncio.gather(*(one(t) for t in targets))
            wall = time.perf_counter() - t0
            cpu = process_cpu_seconds(self._proc.pid) - cpu0
        return BlackboxRun(probes=len(targets), succeeded=sum(ok), wall=wall, cpu=cpu)

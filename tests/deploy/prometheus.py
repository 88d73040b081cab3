"""A real Prometheus server for tests: started on a free loopback port, queried, stopped.

    with running_prometheus(deploy_scrape_config("127.0.0.1:9477")) as prom:
        prom.wait_until(lambda: prom.query('up{job="healthd"}'), timeout=30)
        assert prom.query("healthd_probe_success")

It runs Debian's `/usr/bin/prometheus` (installed by `scripts/install-system-deps`) with a
temporary storage directory and `--web.enable-lifecycle` (so a test can `reload()` an edited
config), waits a bounded time for `/-/ready`, and stops it with SIGTERM (SIGKILL after a
bound). Every wait here is bounded; nothing sleeps except between polls.

The calls are blocking (urllib): from an async test, call them through `asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tests.deploy.paths import DEPLOY
from tests.deploy.tools import ToolRun, run_tool, system_tool

T = TypeVar("T")

DEPLOY_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
HTTP_TIMEOUT = 10.0
POLL_INTERVAL = 0.1


class PrometheusError(RuntimeError):
    """Prometheus did not start, exited, or answered a request with an error."""


def free_port() -> int:
    """A loopback port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def deploy_scrape_config(
    target: str,
    *,
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
    rule_files: list[Path] | None = None,
) -> dict[str, Any]:
    """`deploy/prometheus/prometheus.yml`, pointed at `target` (HOST:PORT) and sped up.

    The healthd job's targets become `[target]`, rule files become absolute paths (the
    config is written elsewhere) or `rule_files` when given (a copy of the deploy rules with
    test-sized thresholds, say), and the Alertmanager section is dropped (none runs here).
    """
    config: dict[str, Any] = yaml.safe_load(DEPLOY_CONFIG.read_text())
    config["global"]["scrape_interval"] = scrape_interval
    config["global"]["evaluation_interval"] = evaluation_interval
    if rule_files is None:
        rule_files = [DEPLOY_CONFIG.parent / path for path in config["rule_files"]]
    config["rule_files"] = [str(path) for path in rule_files]
    config.pop("alerting", None)
    for job in config["scrape_configs"]:
        if job["job_name"] == "healthd":
            job["scrape_interval"] = scrape_interval
            job["scrape_timeout"] = scrape_interval
            job["static_configs"] = [{"targets": [target]}]
    return config


def check_metrics(exposition: str) -> ToolRun:
    """`promtool check metrics` on a /metrics body: naming, help text, types, units."""
    return run_tool([system_tool("promtool"), "check", "metrics"], stdin=exposition)


class Prometheus:
    """A running server: its URL and a few calls of its HTTP API."""

    def __init__(self, url: str, config_file: Path, *, owns_config: bool) -> None:
        self.url = url
        self.config_file = config_file
        self._owns_config = owns_config

    def _request(self, path: str, *, method: str = "GET") -> bytes:
        request = urllib.request.Request(self.url + path, method=method)
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
                body: bytes = response.read()
                return body
        except urllib.error.HTTPError as exc:
            raise PrometheusError(f"{method} {path}: {exc.code} {exc.read()[:500]!r}") from exc

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>; returns the answer's `data`, raises on an error status."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        answer = json.loads(self._request(f"/api/v1/{path}{query}"))
        if answer.get("status") != "success":
            raise PrometheusError(f"{path}: {answer.get('errorType')}: {answer.get('error')}")
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query; returns the result vector (`[{"metric": {...}, "value": [t, v]}]`)."""
        data = self.api("query", query=expr)
        if data["resultType"] != "vector":
            raise PrometheusError(f"{expr!r} is a {data['resultType']}, not an instant vector")
        result: list[dict[str, Any]] = data["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (pending and firing), as /api/v1/alerts lists them."""
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts

    def rule_groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = self.api("rules")["groups"]
        return groups

    def reload(self, config: dict[str, Any] | None = None) -> None:
        """Rewrites the config (if given) and asks Prometheus to load it (POST /-/reload)."""
        if config is not None:
            if not self._owns_config:
                raise PrometheusError(f"started from {self.config_file}: not rewriting it")
            self.config_file.write_text(yaml.safe_dump(config))
        self._request("/-/reload", method="POST")

    def wait_until(self, check: Callable[[], T], *, timeout: float) -> T:
        """Polls `check` until it returns something truthy; fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition still false after {timeout}s: {value!r}")
            time.sleep(POLL_INTERVAL)


def _wait_ready(process: subprocess.Popen[bytes], url: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise PrometheusError(
                f"prometheus exited with {process.returncode}:\n{log.read_text()[-3000:]}"
            )
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url + "/-/ready", timeout=1.0) as response:
                if response.status == 200:
                    return
        if time.monotonic() >= deadline:
            raise PrometheusError(
                f"prometheus not ready after {timeout}s:\n{log.read_text()[-3000:]}"
            )
        time.sleep(POLL_INTERVAL)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@contextlib.contextmanager
def running_prometheus(
    config: dict[str, Any] | Path, *, port: int | None = None, timeout: float = 60.0
) -> Iterator[Prometheus]:
    """Starts Prometheus with `config` (a dict, or a file used in place) and stops it after.

    `port` lets the caller know the address before starting (to scrape Prometheus itself,
    say); by default a free one is picked. The server's log is in the error if it fails.
    """
    binary = system_tool("prometheus")
    listen = f"127.0.0.1:{port if port is not None else free_port()}"
    with tempfile.TemporaryDirectory(prefix="healthd-prometheus-") as tmp:
        workdir = Path(tmp)
        if isinstance(config, Path):
            config_file = config
        else:
            config_file = workdir / "prometheus.yml"
            config_file.write_text(yaml.safe_dump(copy.deepcopy(config)))
        log = workdir / "prometheus.log"
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config_file}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address={listen}",
                    "--web.enable-lifecycle",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        try:
            url = f"http://{listen}"
            _wait_ready(process, url, log, timeout)
            yield Prometheus(url, config_file, owns_config=not isinstance(config, Path))
        finally:
            _stop(process)

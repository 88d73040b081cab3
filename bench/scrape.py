"""Does a `/metrics` scrape pause probing? A real `healthd run`, with and without scraping.

    python bench/scrape.py [--integrations 20000] [--interval 60] [--seconds 30]
                           [--warmup SECONDS] [--failing 0.05] [--before DIR]

Starts `healthd run` as a subprocess with N bridges against the simulator (its own
process, 50 ms per request; `--failing` of the bridges offline, so some integrations need
attention), waits until `/readyz` answers and `--warmup` more (the start-up runs and the
alert engine's work after them), then measures two windows of `--seconds` each: one
quiet, one with a client scraping `/metrics` back to back (each scrape waits for the
previous: Prometheus never overlaps scrapes of a target, so this is the highest rate one
target sees; the daemon renders at most once a second and serves that body meanwhile).
In both windows a second client asks `/healthz` every 50 ms: its latency is the event
loop's lag, what a probe waiting for the loop waits too. It prints probes per second
(`healthd_probes_total`, read from bodies up to a second old at either end), the daemon's
CPU, the scrape and `/healthz` latencies. `--before DIR` (a checkout of main) runs the
same with that tree's healthd first on PYTHONPATH, in the same run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from _machine import healthd_command, print_header, print_table, process_cpu_seconds
from daemon import PASSWORD_ENV, config, probes_done
from sweep import simulator

from healthd.sim.client import SimClient
from healthd.sim.fixtures import sim_credentials

HEALTHZ_EVERY = 0.05


@dataclass
class Latencies:
    """Request latencies of one client, gathered until `stop` is set."""

    seconds: list[float] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, url: str, pause: float) -> None:
        while not self.stop.is_set():
            t0 = time.perf_counter()
            with urllib.request.urlopen(url, timeout=60) as answer:
                answer.read()
            self.seconds.append(time.perf_counter() - t0)
            self.stop.wait(pause)

    def text(self) -> str:
        if not self.seconds:
            return "—"
        ms = sorted(s * 1000 for s in self.seconds)
        p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
        return f"{statistics.median(ms):.1f} / {p95:.1f} / {ms[-1]:.0f} ms ({len(ms)})"


@contextmanager
def clients(url: str, scrape: bool) -> Iterator[tuple[Latencies, Latencies | None]]:
    health, metrics = Latencies(), Latencies() if scrape else None
    threads = [threading.Thread(target=health.run, args=(url + "/healthz", HEALTHZ_EVERY))]
    if metrics is not None:
        threads.append(threading.Thread(target=metrics.run, args=(url + "/metrics", 0.0)))
    for t in threads:
        t.start()
    try:
        yield health, metrics
    finally:
        health.stop.set()
        if metrics is not None:
            metrics.stop.set()
        for t in threads:
            t.join(timeout=120)


@contextmanager
def daemon(sim_url: str, n: int, interval: int, tree: Path | None) -> Iterator[tuple[str, int]]:
    """`healthd run` over N bridges (healthd imported from `tree` if given); (url, pid)."""
    with tempfile.TemporaryDirectory(prefix="healthd-scrape-") as tmp:
        path = Path(tmp) / "healthd.yaml"
        path.write_text(yaml.safe_dump(config(sim_url, n, interval, Path(tmp) / "h.db")))
        command, env = healthd_command("run", "--config", str(path), tree=tree)
        env[PASSWORD_ENV] = sim_credentials("imessage_bridge", "b0")["password"]
        proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
        try:
            assert proc.stderr is not None
            url = ""
            for line in proc.stderr:
                if '"listen"' in line:
                    url = json.loads(line)["listen"]
                    break
            if not url:
                raise RuntimeError(f"healthd run exited with {proc.wait()} before listening")
            # Keep reading its log so the pipe never fills and stalls the daemon.
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            yield url, proc.pid
        finally:
            proc.terminate()
            proc.wait(timeout=60)


def wait_ready(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=10):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    raise RuntimeError(f"{url} not ready within {timeout:.0f} s")


@dataclass(frozen=True)
class Window:
    probes_per_second: float
    cpu_share: float
    healthz: str
    scrapes: str


def window(url: str, pid: int, seconds: float, scrape: bool) -> Window:
    with clients(url, scrape) as (health, metrics):
        cpu0, done0 = process_cpu_seconds(pid), probes_done(url)
        time.sleep(seconds)
        cpu1, done1 = process_cpu_seconds(pid), probes_done(url)
    return Window(
        probes_per_second=(done1 - done0) / seconds,
        cpu_share=(cpu1 - cpu0) / seconds,
        healthz=health.text(),
        scrapes=metrics.text() if metrics else "none",
    )


def measure(
    sim_url: str, n: int, interval: int, seconds: float, warmup: float, tree: Path | None
) -> list[Window]:
    with daemon(sim_url, n, interval, tree) as (url, pid):
        wait_ready(url, timeout=600)
        time.sleep(warmup)  # the start-up runs, and the engine's work after them
        return [window(url, pid, seconds, scrape) for scrape in (False, True)]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--integrations", type=int, default=20_000)
    parser.add_argument("--interval", type=int, default=60, help="seconds")
    parser.add_argument("--seconds", type=float, default=30.0, help="each measured window")
    parser.add_argument("--warmup", type=float, help="seconds after ready (default 2 intervals)")
    parser.add_argument("--failing", type=float, default=0.05, help="share of bridges offline")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request")
    parser.add_argument("--before", type=Path, help="a checkout of main: its healthd is 'before'")
    args = parser.parse_args(argv)
    print_header(
        "/metrics scrapes beside probing, healthd run",
        f"{args.integrations:,} bridges every {args.interval} s, {args.failing:.0%} offline;"
        f" simulator: separate process, {args.latency * 1000:g} ms per request;"
        f" {args.warmup or 2 * args.interval:g} s after ready, then windows of {args.seconds:g} s;"
        " latencies p50 / p95 / max (count)",
    )
    trees: list[tuple[str, Path | None]] = [("after", None)]
    if args.before:
        trees.insert(0, ("before", args.before.resolve()))
    rows = []
    with simulator(args.latency) as (sim_url, _pid):
        sim = SimClient(sim_url)
        if args.failing > 0:
            for i in range(0, args.integrations, max(1, round(1 / args.failing))):
                sim.set_scenario("imessage_bridge", "offline", target=f"b{i}")
        for label, tree in trees:
            warmup = args.warmup if args.warmup is not None else 2 * args.interval
            quiet, scraped = measure(
                sim_url, args.integrations, args.interval, args.seconds, warmup, tree
            )
            for name, w in (("no scrapes", quiet), ("scraped back to back", scraped)):
                rows.append(
                    [
                        label,
                        name,
                        f"{w.probes_per_second:,.0f}",
                        f"{w.cpu_share * 100:.0f}%",
                        w.healthz,
                        w.scrapes,
                    ]
                )
    print_table(
        rows,
        ["healthd", "window", "probes/s", "daemon CPU", "/healthz latency", "/metrics latency"],
    )


if __name__ == "__main__":
    main()

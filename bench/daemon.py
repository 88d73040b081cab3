"""CPU per probe of a real `healthd run` process: everything a deployment pays, all in.

    python bench/daemon.py [--integrations 10000] [--interval 10 60] [--seconds 120]

`bench/sweep.py` times `Runner.run_many` alone. A running daemon also pays for what a
sweep leaves out: APScheduler's slot jobs, the alert engine's evaluations (after runs that
change what a rule reads, and on its tick), the bridge backlog re-read every
`backlog_every`, the outbox's polling and the HTTP listener. This starts `healthd run` as
a subprocess with N bridges against the simulator (its own process, 50 ms per request),
waits until every integration has been probed once and one interval more (the start-up
transient), then reads the daemon process's CPU time and `healthd_probes_total` from its
`/metrics` before and after `--seconds`. It also prints the time to ready, the first
round, RSS per integration at ready and after the window, the shutdown, and a restart on
the store the run filled: time to ready with N stored and how many probes run in the
first tenth of an interval (a restart must not probe everything at once).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from _machine import print_header, print_table, process_cpu_seconds, rss_bytes
from sweep import simulator

from healthd.sim.fixtures import integration_entry, sim_credentials

PASSWORD_ENV = "HEALTHD_BENCH_BRIDGE_PASSWORD"
WARM_UP_BOUND = 600.0  # seconds: the first round must end within this (or 10 intervals)


def concurrency(n: int) -> int:
    """Probes in flight: the default 100 up to 20,000 bridges, then enough for N a minute
    (a bridge run is 1-3 round trips of 50 ms; 100 in flight make at most 1,000 a second,
    and 100,000 at 60 s need 1,667): 500 at 100,000, as the issue's figures were taken."""
    return max(100, n // 200)


def config(sim_url: str, n: int, interval: int, store: Path) -> dict[str, object]:
    return {
        "listen": "127.0.0.1:0",
        "store": f"sqlite:///{store}",
        "defaults": {
            "interval": f"{interval}s",
            "timeout": f"{min(5.0, interval / 2):g}s",
            "jitter": "1s",
            "concurrency": concurrency(n),
        },
        "integrations": [
            integration_entry(
                "imessage_bridge",
                sim_url,
                f"b{i}",
                id=f"bridge-{i:05d}",
                tenant=f"tenant{i % 100}",
                credentials={"password": f"env:{PASSWORD_ENV}"},
            )
            for i in range(n)
        ],
    }


def probes_done(url: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=60) as answer:
        text = answer.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("healthd_probes_total{")
    )


class Running:
    """One `healthd run` subprocess: started, timed to its `started` line (ready), and
    timed from SIGTERM to its exit."""

    def __init__(self, config_path: Path, password: str) -> None:
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "healthd", "run", "--config", str(config_path)],
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, PASSWORD_ENV: password},
        )
        assert self.proc.stderr is not None
        self.url = ""
        for line in self.proc.stderr:
            if '"listen"' in line:
                self.url = json.loads(line)["listen"]
                break
        if not self.url:
            raise RuntimeError(f"healthd run exited with {self.proc.wait()} before listening")
        self.ready_seconds = time.perf_counter() - t0
        print(f"ready in {self.ready_seconds:.1f} s", file=sys.stderr, flush=True)
        self.rss_ready = rss_bytes(self.proc.pid)
        # Keep reading its log so the pipe never fills and stalls the daemon.
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def stop(self) -> float:
        t0 = time.perf_counter()
        self.proc.terminate()
        self.proc.wait(timeout=120)
        return time.perf_counter() - t0

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def warm_up(daemon: Running, n: int, interval: int) -> float:
    """Waits until every integration has been probed once (the start-up transient: every
    first run a transition and a new row), bounded, then one interval more; returns how
    long the first round took. A fixed three intervals ended inside the transient at
    100,000, where the first round alone outlasted them."""
    t0 = time.perf_counter()
    deadline = t0 + max(WARM_UP_BOUND, 10 * interval)
    while probes_done(daemon.url) < n:
        if time.perf_counter() > deadline:
            done = probes_done(daemon.url)
            raise RuntimeError(
                f"{done:,.0f} of {n:,} integrations probed within {deadline - t0:.0f} s"
            )
        time.sleep(min(5.0, interval / 4))
    first_round = time.perf_counter() - t0
    print(f"first round of {n:,} done in {first_round:.0f} s", file=sys.stderr, flush=True)
    time.sleep(interval)
    return first_round


def measure(sim_url: str, n: int, interval: int, seconds: float) -> dict[str, float]:
    """The run on an empty store (start-up, first round, the measured window, RSS, shutdown),
    then a restart on the store it filled: start-up with N stored, the probes in the first
    tenth of an interval (all at once would be N; spread from `last_checked` about N/10),
    shutdown."""
    with tempfile.TemporaryDirectory(prefix="healthd-bench-") as tmp:
        # JSON, which is YAML too: a generated fleet's file, parsed in a fraction of the time
        # (healthd.config; a YAML file of 100,000 adds about 13 s of libyaml at start-up).
        path = Path(tmp) / "healthd.json"
        path.write_text(json.dumps(config(sim_url, n, interval, Path(tmp) / "h.db")))
        password = sim_credentials("imessage_bridge", "b0")["password"]
        daemon = Running(path, password)
        try:
            first_round = warm_up(daemon, n, interval)
            cpu0, done0 = process_cpu_seconds(daemon.proc.pid), probes_done(daemon.url)
            time.sleep(seconds)
            cpu1, done1 = process_cpu_seconds(daemon.proc.pid), probes_done(daemon.url)
            rss_after = rss_bytes(daemon.proc.pid)
            out = {
                "probes": done1 - done0,
                "cpu": cpu1 - cpu0,
                "ready": daemon.ready_seconds,
                "first_round": first_round,
                "rss_ready": daemon.rss_ready,
                "rss_after": rss_after,
                "stop": daemon.stop(),
            }
        finally:
            daemon.kill()
        restarted = Running(path, password)
        try:
            time.sleep(interval / 10)
            out["restart_ready"] = restarted.ready_seconds
            out["restart_burst"] = probes_done(restarted.url)
            out["restart_stop"] = restarted.stop()
        finally:
            restarted.kill()
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--integrations", type=int, nargs="+", default=[10_000])
    parser.add_argument("--interval", type=int, nargs="+", default=[10, 60], help="seconds")
    # Two minutes is the bridge's `backlog_every`: the window holds one backlog re-read
    # per bridge, as a long-running daemon averages.
    parser.add_argument("--seconds", type=float, default=120.0, help="measured window")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request")
    args = parser.parse_args(argv)
    print_header(
        "healthd run, CPU per probe",
        f"simulator: separate process, {args.latency * 1000:g} ms latency per request",
    )
    rows, starts = [], []
    with simulator(args.latency) as (sim_url, _pid):
        for n in args.integrations:
            for interval in args.interval:
                r = measure(sim_url, n, interval, args.seconds)
                rows.append(
                    [
                        f"{n:,}",
                        f"{interval} s",
                        f"{r['probes']:,.0f}",
                        f"{r['probes'] / args.seconds:,.0f}",
                        f"{r['cpu'] / args.seconds * 100:.0f}%",
                        f"{r['cpu'] / max(r['probes'], 1) * 1000:.3f}",
                        f"{r['rss_ready'] / n / 1024:.1f}; {r['rss_after'] / n / 1024:.1f}",
                    ]
                )
                starts.append(
                    [
                        f"{n:,}",
                        f"{interval} s",
                        f"{r['ready']:.1f} s",
                        f"{r['first_round']:.0f} s",
                        f"{r['stop']:.1f} s",
                        f"{r['restart_ready']:.1f} s",
                        f"{r['restart_burst']:,.0f}",
                        f"{r['restart_stop']:.1f} s",
                    ]
                )
    print_table(
        rows,
        [
            "N",
            "interval",
            "probes in window",
            "probes/s",
            "daemon CPU (of a core)",
            "CPU ms/probe",
            "RSS KB/integration (ready; after)",
        ],
    )
    print_table(
        starts,
        [
            "N",
            "interval",
            "ready (empty store)",
            "first round",
            "shutdown",
            "ready (N stored)",
            "probes in the first interval/10 after restart",
            "shutdown",
        ],
    )


if __name__ == "__main__":
    main()

"""CPU per probe of a real `healthd run` process: everything a deployment pays, all in.

    python bench/daemon.py [--integrations 10000] [--interval 10 60] [--seconds 120]

`bench/sweep.py` times `Runner.run_many` alone. A running daemon also pays for what a
sweep leaves out: APScheduler's slot jobs, the alert engine's evaluations (after runs that
change what a rule reads, and on its tick), the bridge backlog re-read every
`backlog_every`, the outbox's polling and the HTTP listener. This starts `healthd run` as
a subprocess with N bridges against the simulator (its own process, 50 ms per request),
waits three intervals so the start-up runs (and their queue) are done, then reads the
daemon process's CPU time and `healthd_probes_total` from its `/metrics` before and after
`--seconds`.
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

import yaml
from _machine import print_header, print_table, process_cpu_seconds
from sweep import simulator

from healthd.sim.fixtures import integration_entry, sim_credentials

PASSWORD_ENV = "HEALTHD_BENCH_BRIDGE_PASSWORD"


def config(sim_url: str, n: int, interval: int, store: Path) -> dict[str, object]:
    return {
        "listen": "127.0.0.1:0",
        "store": f"sqlite:///{store}",
        "defaults": {
            "interval": f"{interval}s",
            "timeout": f"{min(5.0, interval / 2):g}s",
            "jitter": "1s",
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
    with urllib.request.urlopen(url + "/metrics", timeout=30) as answer:
        text = answer.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("healthd_probes_total{")
    )


def measure(sim_url: str, n: int, interval: int, seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="healthd-bench-") as tmp:
        path = Path(tmp) / "healthd.yaml"
        path.write_text(yaml.safe_dump(config(sim_url, n, interval, Path(tmp) / "h.db")))
        password = sim_credentials("imessage_bridge", "b0")["password"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "healthd", "run", "--config", str(path)],
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, PASSWORD_ENV: password},
        )
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
            time.sleep(3 * interval)
            cpu0, done0 = process_cpu_seconds(proc.pid), probes_done(url)
            time.sleep(seconds)
            cpu1, done1 = process_cpu_seconds(proc.pid), probes_done(url)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return {"probes": done1 - done0, "cpu": cpu1 - cpu0}


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
    rows = []
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
                    ]
                )
    print_table(
        rows,
        ["N", "interval", "probes in window", "probes/s", "daemon CPU (of a core)", "CPU ms/probe"],
    )


if __name__ == "__main__":
    main()

"""CPU per probe of a real `healthd run` process: everything a deployment pays, all in.

    python bench/daemon.py [--integrations 10000] [--interval 10 60] [--seconds 120]
                           [--fleet bridges|mixed]

`bench/sweep.py` times `Runner.run_many` alone. A running daemon also pays for what a
sweep leaves out: APScheduler's slot jobs, the alert engine's evaluations (after runs that
change what a rule reads, and on its tick), the bridge backlog re-read every
`backlog_every`, the outbox's polling and the HTTP listener. This starts `healthd run` as
a subprocess with N integrations against the simulator (its own process, 50 ms per request),
waits until every integration has been probed once and one interval more (the start-up
transient), then reads the daemon process's CPU time and `healthd_probes_total` from its
`/metrics` before and after `--seconds`. It also prints the time to ready, the first
round, RSS per integration at ready and after the window, the shutdown, and a restart on
the store the run filled: time to ready with N stored and how many probes run in the
first tenth of an interval (a restart must not probe everything at once).

`--fleet bridges` (the default) is N iMessage bridges, sharing the simulator's one server
password through one `env:` reference. `--fleet mixed` is a CRM's fleet, the sweep's
`SWEEP_MIX` (`bench/_fixtures.py`): 40 % Twilio, 25 % SendGrid, 25 % Google, 10 % bridges,
interleaved. The seeds' workspace connects Twilio for SMS and one email provider (SendGrid
or Gmail), while the iMessage bridges are the platform's own Mac minis, so there are fewer of
them. Every member is its own account at the simulator (its own Twilio account SID, SendGrid
API key, Google client_id, bridge path), with its own secret files in the bench's temp dir
(`file:` references, one file per credential), so no per-account cache (a Google access
token, a Twilio account's answers) serves two members. The Twilio auth token and the bridge
password have the simulator's default value in every account's file (it accepts no other
without a scenario per target). The window's probes are printed per provider too.

`--before DIR` runs the same case first on the healthd found in DIR (a checkout of main,
put first on the daemon's PYTHONPATH), so before and after come from one run on one
machine. The floor, printed beside: plain aiohttp (`bench/transport.py`, in a fresh
process) making as many requests per probe as the daemon made in its window (counted at
the simulator), at the daemon's concurrency: what no healthd run can go below here. It is
measured twice: in one sweep (requests back to back, as `bench/sweep.py` runs them) and
paced (the daemon's request rate in its window, a second's share at a time as its
scheduler starts a slot, for the window, at most 60 s), the same work at the same pace as
the daemon. For the mixed fleet the floor is the same per-request figure, the bridge's GET
of `server/info`, times the requests per probe the mixed daemon made: plain aiohttp is not
made to replay the four providers' paths (that would copy the probes), and the bridge GET
has the smallest answer and no request body of them, so this floor is below plain
aiohttp's for the real mix and the ratio to it overstates healthd's share, never
understates it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from _fixtures import MIXED, Member, fleet
from _machine import (
    healthd_command,
    print_header,
    print_table,
    process_cpu_seconds,
    rss_bytes,
)
from sweep import plain_aiohttp_ms_per_request, sim_calls, simulator

from healthd.sim.client import SimClient
from healthd.sim.fixtures import integration_entry, sim_credentials
from probes.bridge import PROVIDER as BRIDGE_PROVIDER

PASSWORD_ENV = "HEALTHD_BENCH_BRIDGE_PASSWORD"
BRIDGES = "bridges"
FLEETS = {BRIDGES: BRIDGE_PROVIDER, MIXED: MIXED}
# Seconds the first round must end within (or 10 intervals); `--warm-up` for a starved host.
WARM_UP_BOUND = 600.0


def concurrency(n: int) -> int:
    """Probes in flight: the default 100 up to 20,000 bridges, then enough for N a minute
    (a bridge run is 1-3 round trips of 50 ms; 100 in flight make at most 1,000 a second,
    and 100,000 at 60 s need 1,667): 500 at 100,000, as the issue's figures were taken."""
    return max(100, n // 200)


def credentials(fleet_name: str, member: Member, secrets: Path) -> dict[str, str]:
    """`member`'s credentials as the daemon takes them: references. The bridges fleet names
    one environment variable (the simulator's one password); the mixed fleet writes each
    credential of each account to its own file under `secrets`."""
    if fleet_name == BRIDGES:
        return {"password": f"env:{PASSWORD_ENV}"}
    out = {}
    for name, value in sim_credentials(member.provider, member.target).items():
        path = secrets / f"{member.id}.{name}"
        path.write_text(value)
        path.chmod(0o600)
        out[name] = f"file:{path}"
    return out


def config(
    sim_url: str, n: int, interval: int, store: Path, fleet_name: str = BRIDGES
) -> dict[str, object]:
    secrets = store.with_name("secrets")
    secrets.mkdir(exist_ok=True)
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
                m.provider,
                sim_url,
                m.target,
                id=m.id,
                tenant=f"tenant{m.i % 100}",
                credentials=credentials(fleet_name, m, secrets),
            )
            for m in fleet(FLEETS[fleet_name], n)
        ],
    }


def probes_by_provider(url: str) -> dict[str, float]:
    """`healthd_probes_total` from the daemon's `/metrics`, summed over statuses."""
    with urllib.request.urlopen(url + "/metrics", timeout=60) as answer:
        text = answer.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("healthd_probes_total{"):
            provider = line.split('provider="', 1)[1].split('"', 1)[0]
            out[provider] = out.get(provider, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def probes_done(url: str) -> float:
    return sum(probes_by_provider(url).values())


class Running:
    """One `healthd run` subprocess: started, timed to its `started` line (ready), and
    timed from SIGTERM to its exit."""

    def __init__(self, config_path: Path, password: str, tree: Path | None = None) -> None:
        t0 = time.perf_counter()
        command, env = healthd_command("run", "--config", str(config_path), tree=tree)
        self.proc = subprocess.Popen(
            command,
            stderr=subprocess.PIPE,
            text=True,
            env={**env, PASSWORD_ENV: password},
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


def warm_up(daemon: Running, n: int, interval: int, bound: float) -> float:
    """Waits until every integration has been probed once (the start-up transient: every
    first run a transition and a new row), bounded, then one interval more; returns how
    long the first round took. A fixed three intervals ended inside the transient at
    100,000, where the first round alone outlasted them."""
    t0 = time.perf_counter()
    deadline = t0 + max(bound, 10 * interval)
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


def requests_made(sim: SimClient) -> int:
    return sum(sim_calls(sim).values())


def measure(
    sim_url: str,
    n: int,
    interval: int,
    seconds: float,
    tree: Path | None = None,
    bound: float = WARM_UP_BOUND,
    fleet_name: str = BRIDGES,
) -> tuple[dict[str, float], dict[str, float]]:
    """The run on an empty store (start-up, first round, the measured window, RSS, shutdown),
    then a restart on the store it filled: start-up with N stored, the probes in the first
    tenth of an interval (all at once would be N; spread from `last_checked` about N/10),
    shutdown. Second, the window's probes by provider."""
    with tempfile.TemporaryDirectory(prefix="healthd-bench-") as tmp:
        # JSON, which is YAML too: a generated fleet's file, parsed in a fraction of the time
        # (healthd.config; a YAML file of 100,000 adds about 13 s of libyaml at start-up).
        path = Path(tmp) / "healthd.json"
        path.write_text(json.dumps(config(sim_url, n, interval, Path(tmp) / "h.db", fleet_name)))
        password = sim_credentials("imessage_bridge", "b0")["password"]
        sim = SimClient(sim_url)
        daemon = Running(path, password, tree)
        try:
            first_round = warm_up(daemon, n, interval, bound)
            cpu0, done0 = process_cpu_seconds(daemon.proc.pid), probes_by_provider(daemon.url)
            calls0 = requests_made(sim)
            time.sleep(seconds)
            cpu1, done1 = process_cpu_seconds(daemon.proc.pid), probes_by_provider(daemon.url)
            calls1 = requests_made(sim)
            rss_after = rss_bytes(daemon.proc.pid)
            by_provider = {p: done1[p] - done0.get(p, 0.0) for p in sorted(done1)}
            out = {
                "probes": sum(by_provider.values()),
                "requests": calls1 - calls0,
                "cpu": cpu1 - cpu0,
                "ready": daemon.ready_seconds,
                "first_round": first_round,
                "rss_ready": daemon.rss_ready,
                "rss_after": rss_after,
                "stop": daemon.stop(),
            }
        finally:
            daemon.kill()
        restarted = Running(path, password, tree)
        try:
            time.sleep(interval / 10)
            out["restart_ready"] = restarted.ready_seconds
            out["restart_burst"] = probes_done(restarted.url)
            out["restart_stop"] = restarted.stop()
        finally:
            restarted.kill()
    return out, by_provider


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--integrations", type=int, nargs="+", default=[10_000])
    parser.add_argument("--interval", type=int, nargs="+", default=[10, 60], help="seconds")
    # Two minutes is the bridge's `backlog_every`: the window holds one backlog re-read
    # per bridge, as a long-running daemon averages.
    parser.add_argument("--seconds", type=float, default=120.0, help="measured window")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request")
    parser.add_argument("--before", type=Path, help="a checkout of main: its healthd is 'before'")
    parser.add_argument(
        "--fleet",
        choices=sorted(FLEETS),
        default=BRIDGES,
        help=f"{MIXED}: Twilio, SendGrid, Google and bridges (bench/_fixtures.py SWEEP_MIX)",
    )
    parser.add_argument("--no-floor", action="store_true", help="skip plain aiohttp's floor")
    parser.add_argument(
        "--warm-up", type=float, default=WARM_UP_BOUND, help="seconds the first round may take"
    )
    args = parser.parse_args(argv)
    print_header(
        "healthd run, CPU per probe",
        f"simulator: separate process, {args.latency * 1000:g} ms latency per request;"
        f" fleet: {args.fleet}",
    )
    trees: list[tuple[str, Path | None]] = [("after", None)]
    if args.before:
        trees.insert(0, ("before", args.before.resolve()))
    rows, starts, floors = [], [], []
    with simulator(args.latency) as (sim_url, _pid):
        for n in args.integrations:
            for interval in args.interval:
                per_probe: dict[str, tuple[float, float]] = {}
                rates: dict[str, float] = {}
                for label, tree in trees:
                    try:
                        r, by_provider = measure(
                            sim_url, n, interval, args.seconds, tree, args.warm_up, args.fleet
                        )
                    except RuntimeError as exc:  # the other tree's figures still print
                        print(f"{label}, {n:,} at {interval} s: {exc}", file=sys.stderr)
                        continue
                    probes = max(r["probes"], 1)
                    per_probe[label] = (r["cpu"] / probes * 1000, r["requests"] / probes)
                    rates[label] = r["requests"] / args.seconds
                    rows.append(
                        [
                            label,
                            f"{n:,}",
                            f"{interval} s",
                            f"{r['probes']:,.0f}",
                            f"{r['probes'] / args.seconds:,.0f}",
                            f"{r['cpu'] / args.seconds * 100:.0f}%",
                            f"{per_probe[label][1]:.2f}",
                            f"{per_probe[label][0]:.3f}",
                            f"{r['rss_ready'] / n / 1024:.1f}; {r['rss_after'] / n / 1024:.1f}",
                            ", ".join(f"{p} {k:,.0f}" for p, k in by_provider.items()),
                        ]
                    )
                    starts.append(
                        [
                            label,
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
                if not args.no_floor:
                    floor = plain_aiohttp_ms_per_request(sim_url, n, concurrency(n))
                    for label, (ms, requests) in per_probe.items():
                        paced = plain_aiohttp_ms_per_request(
                            sim_url, n, concurrency(n), rates[label], min(60, int(args.seconds))
                        )
                        floors.append(
                            [
                                label,
                                f"{n:,}",
                                f"{interval} s",
                                f"{requests:.2f}",
                                f"{floor:.3f}; {paced:.3f}",
                                f"{floor * requests:.3f}; {paced * requests:.3f}",
                                f"{ms:.3f}",
                                f"{ms / (floor * requests):.2f}x; {ms / (paced * requests):.2f}x",
                            ]
                        )
    print_table(
        rows,
        [
            "tree",
            "N",
            "interval",
            "probes in window",
            "probes/s",
            "daemon CPU (of a core)",
            "requests/probe",
            "CPU ms/probe",
            "RSS KB/integration (ready; after)",
            "probes in window by provider",
        ],
    )
    print_table(
        starts,
        [
            "tree",
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
    if floors:
        print_table(
            floors,
            [
                "tree",
                "N",
                "interval",
                "requests/probe",
                "plain aiohttp CPU ms/request (sweep; paced)",
                "floor ms/probe (same requests; sweep; paced)",
                "healthd CPU ms/probe",
                "healthd/floor (sweep; paced)",
            ],
        )


if __name__ == "__main__":
    main()

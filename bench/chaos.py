"""The long SIGKILL loop: does a killed and restarted daemon lose, repeat or reorder a page?

    python bench/chaos.py [--kills 24] [--seed 0] [--seconds-between 1 6]

One real `healthd run` process on a SQLite file in a temporary folder, one bridge against
the simulator (its PagerDuty over TLS is the receiver), thresholds of seconds. The bridge
goes offline and online in turns. Each phase is held, plus a seeded random extra, until
the running daemon says it has seen it (the incident open, or closed, and its outbox
empty) and PagerDuty has received its trigger (or resolve), or for 60 s at most: every
outage is one that should page, every recovery one that should resolve, and each event
arrives within its own outage and recovery unless it is late by a minute or lost.
On its own seeded clock, independent of the phases, the daemon is SIGKILLed and started
again on the same file. After the last kill the bridge comes back, the last daemon
runs until its outbox is drained and is stopped with SIGTERM; then the events PagerDuty
received are read and counted per dedup key against the outages.

The simulator runs on a thread of this process (`SimulatorThread`, as the e2e tests run
it): the daemon is the process killed, and PagerDuty needs the simulator's HTTPS listener
and CA, which `sweep.simulator` does not hand out. The daemon is started, killed and
stopped by the e2e tests' own `DaemonProcess`, on the e2e tests' config.
"""

from __future__ import annotations

import argparse
import bisect
import json
import random
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: tests.conftest

from _machine import print_header, print_table

from healthd.sim.app import SimulatorThread
from healthd.sim.bridge import DEFAULT_PASSWORD as BRIDGE_PASSWORD
from healthd.sim.client import SimClient
from tests.conftest import (
    ADMIN_TOKEN,
    ROUTING_KEY,
    TENANT_TOKENS,
    DaemonProcess,
    base_config,
    bridge,
    write_config,
)

BRIDGE = "bridge-dc1"
DEDUP = f"healthd/bridge_unreachable/{BRIDGE}"
PAGE_AFTER = 3.0  # seconds
PHASE_BOUND = 60.0  # seconds a phase waits for the daemon to see it, at most
POLL = 0.1  # seconds between looks at the daemon


def env() -> dict[str, str]:
    """The secrets the e2e config names (`env:HEALTHD_TEST_*`), as its fixture sets them."""
    return {
        "HEALTHD_TEST_ROUTING_KEY": ROUTING_KEY,
        "HEALTHD_TEST_BRIDGE_PASSWORD": BRIDGE_PASSWORD,
        "HEALTHD_TEST_ADMIN_TOKEN": ADMIN_TOKEN,
        **{f"HEALTHD_TEST_TOKEN_{t.upper()}": v for t, v in TENANT_TOKENS.items()},
    }


def config_file(sim: SimulatorThread, folder: Path) -> Path:
    """One bridge probed every second, failing after 2 runs, paging 3 s after the first."""
    doc = base_config(
        sim,
        [bridge(sim)],
        store=f"sqlite:///{folder / 'healthd.db'}",
        defaults={"interval": "1s", "timeout": "0.5s", "jitter": "0s", "failure_threshold": 2},
    )
    doc["alerting"]["rules"] = {"bridge_unreachable": {"page_after": f"{PAGE_AFTER:g}s"}}
    return write_config(folder / "healthd.yaml", doc)


def fetch(daemon: DaemonProcess, path: str) -> bytes | None:
    """The daemon's answer, or None while it is not answering (killed, starting)."""
    request = urllib.request.Request(
        daemon.url + path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as answer:
            body: bytes = answer.read()
            return body
    except OSError:
        return None


def seen(daemon: DaemonProcess, client: SimClient, offline: bool, since: datetime | None) -> bool:
    """Whether the phase begun at `since` (None: before the first outage) is seen through:
    the daemon has its incident open (offline) or closed (online) and no event waiting in
    its outbox, and PagerDuty has received the phase's trigger (or resolve) since.

    PagerDuty's side is asked too because the daemon's two answers are not one snapshot:
    the pending gauge is refreshed on the engine's tick, so it can still read 0 when the
    incident list already shows the resolve that is yet to be sent.
    """
    metrics = fetch(daemon, "/metrics")
    listed = fetch(daemon, "/api/v1/incidents")
    if metrics is None or listed is None:
        return False
    pending = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.decode().splitlines()
        if line.startswith("healthd_alert_outbox_pending{")
    ]
    incidents = json.loads(listed)["incidents"]
    is_open = any(i["dedup_key"] == DEDUP and i["open"] for i in incidents)
    if not pending or sum(pending) != 0 or is_open != offline:
        return False
    action = "trigger" if offline else "resolve"
    return since is None or any(
        e["dedup_key"] == DEDUP
        and e["body"]["event_action"] == action
        and datetime.fromisoformat(e["received_at"]) >= since
        for e in client.pagerduty_events()
    )


@dataclass
class Run:
    outages: list[datetime]  # when each outage began (the bridge set offline)
    kills: int
    bounded: int  # phases that reached PHASE_BOUND before the daemon saw them
    exit_code: int  # the last daemon's, after SIGTERM


def drive(
    sim: SimulatorThread, folder: Path, kills: int, rng: random.Random, gap: Sequence[float]
) -> Run:
    """Outages and recoveries in turns, SIGKILLs on their own clock, until `kills` are done
    and a recovery has been seen through."""
    client = sim.client()
    path = config_file(sim, folder)
    daemon = DaemonProcess(path, env()).start()
    outages: list[datetime] = []
    began: datetime | None = None  # when the phase began, None before the first outage
    offline, since, hold, bounded, killed = False, time.monotonic(), 0.0, 0, 0
    next_kill = time.monotonic() + rng.uniform(*gap)
    try:
        while True:
            now = time.monotonic()
            if killed < kills and now >= next_kill:
                daemon.kill()
                daemon = DaemonProcess(path, env()).start()
                killed += 1
                next_kill = time.monotonic() + rng.uniform(*gap)
            done = now - since >= hold and seen(daemon, client, offline, began)
            if not done and now - since > PHASE_BOUND:
                bounded, done = bounded + 1, True
            if done:
                if not offline and killed >= kills and outages:
                    break
                offline = not offline
                began = datetime.now(UTC)
                if offline:
                    outages.append(began)
                client.set_scenario("imessage_bridge", "offline" if offline else "ok", target="dc1")
                since, hold = time.monotonic(), rng.uniform(0.0, 2.0)
            time.sleep(POLL)
    finally:
        exit_code = daemon.stop()
    return Run(outages, killed, bounded, exit_code)


@dataclass
class Tally:
    """One dedup key's figures (or the total)."""

    expected: int = 0  # outages that should have paged
    triggers: int = 0
    resolves: int = 0
    lost: int = 0  # an outage with no trigger, or still open at PagerDuty when the next began
    repeats: int = 0  # triggers within an open incident (at-least-once, PagerDuty dedups)
    duplicated: int = 0  # a second incident opened for one outage
    reordered: int = 0  # a resolve before its outage's trigger
    zombie: int = 0  # incidents open at PagerDuty at the end
    unexpected: int = 0  # incidents opened with no outage to page for

    def add(self, other: Tally) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def tally(key: str, events: list[dict[str, Any]], outages: list[datetime], zombie: int) -> Tally:
    """Fold one key's events in arrival order as PagerDuty does, each attributed to the
    outage (with its recovery) during which it arrived; before the first outage is -1."""
    t = Tally(expected=len(outages) if key == DEDUP else 0, zombie=zombie)
    is_open, opened, triggered, open_at_end = False, Counter[int](), Counter[int](), set[int]()
    cycle = -1
    for event in events:
        at = bisect.bisect_right(outages, datetime.fromisoformat(event["received_at"])) - 1
        while cycle < at:
            if is_open:
                open_at_end.add(cycle)
            cycle += 1
        if event["body"]["event_action"] == "trigger":
            t.triggers += 1
            triggered[at] += 1
            if is_open:
                t.repeats += 1
            else:
                is_open, opened[at] = True, opened[at] + 1
                if key != DEDUP or at < 0:
                    t.unexpected += 1
                elif opened[at] > 1:
                    t.duplicated += 1
        elif event["body"]["event_action"] == "resolve":
            t.resolves += 1
            if is_open:
                is_open = False
            elif not opened[at]:
                t.reordered += 1
    if is_open:
        open_at_end.update(range(cycle, len(outages)))
    if key == DEDUP:
        t.lost = sum(1 for c in range(len(outages)) if not triggered[c] or c in open_at_end)
    return t


def report(client: SimClient, run: Run) -> Tally:
    events = client.pagerduty_events()
    open_by_key = Counter(
        i["dedup_key"] for i in client.pagerduty_incidents() if i["status"] != "resolved"
    )
    keys = sorted({DEDUP} | {e["dedup_key"] for e in events if e["dedup_key"]})
    total, rows = Tally(), []
    for key in keys:
        mine = [e for e in events if e["dedup_key"] == key]
        t = tally(key, mine, run.outages, open_by_key[key])
        total.add(t)
        rows.append([key, *(str(getattr(t, f.name)) for f in fields(t))])
    rows.append(["total", *(str(getattr(total, f.name)) for f in fields(total))])
    print_table(rows, ["dedup key", *(f.name for f in fields(Tally))])
    print(
        f"\nlost {total.lost}, duplicated {total.duplicated} (repeats within an open incident "
        f"{total.repeats}), zombie {total.zombie}, reordered {total.reordered}, unexpected "
        f"{total.unexpected}; {run.kills} SIGKILLs, {len(run.outages)} outages, "
        f"{run.bounded} phases held to the {PHASE_BOUND:g} s bound, last daemon exited "
        f"{run.exit_code} on SIGTERM"
    )
    return total


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--kills", type=int, default=24, help="SIGKILLs before the end")
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill and hold times")
    parser.add_argument(
        "--seconds-between",
        type=float,
        nargs=2,
        default=[1.0, 6.0],
        metavar=("MIN", "MAX"),
        help="bounds of the uniform time between two SIGKILLs",
    )
    args = parser.parse_args(argv)
    low, high = args.seconds_between
    if not 0 < low <= high or args.kills < 0:
        parser.error("--seconds-between needs 0 < MIN <= MAX, --kills at least 0")
    print_header(
        "healthd run, SIGKILL loop",
        f"{args.kills} SIGKILLs {low:g}-{high:g} s apart (seed {args.seed}), one bridge "
        f"probed every 1 s, page_after {PAGE_AFTER:g} s, SQLite store, simulator's PagerDuty",
    )
    with SimulatorThread() as sim, tempfile.TemporaryDirectory(prefix="healthd-chaos-") as tmp:
        run = drive(sim, Path(tmp), args.kills, random.Random(args.seed), (low, high))
        total = report(sim.client(), run)
    return 0 if total.lost == total.zombie == total.reordered == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

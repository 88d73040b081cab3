"""`healthd run` as a real process, in real time with short thresholds, killed with SIGKILL.

A restart must neither page twice nor forget: the open incident and the bridge's
`unreachable_since` live in the SQLite store, and the resolve still comes.
"""

from __future__ import annotations

import json
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from healthd.sim.app import SimulatorThread
from healthd.sim.client import SimClient
from tests.conftest import ADMIN_TOKEN, DaemonProcess, base_config, bridge, wait_until, write_config

pytestmark = pytest.mark.e2e

BRIDGE = "bridge-dc1"


def start(
    tmp_path: Path, sim: SimulatorThread, env: dict[str, str], page_after: str
) -> DaemonProcess:
    doc = base_config(
        sim,
        [bridge(sim)],
        store=f"sqlite:///{tmp_path / 'healthd.db'}",
        defaults={"interval": "1s", "timeout": "0.5s", "jitter": "0s", "failure_threshold": 2},
    )
    doc["alerting"]["rules"] = {"bridge_unreachable": {"page_after": page_after}}
    return DaemonProcess(write_config(tmp_path / "healthd.yaml", doc), env).start()


def integration(daemon: DaemonProcess) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{daemon.url}/api/v1/integrations/{BRIDGE}",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        data: dict[str, Any] = json.load(answer)
        return data


def probed_after(daemon: DaemonProcess, moment: datetime, runs: int = 1) -> None:
    """Wait until the daemon has probed `runs` more times after `moment`."""
    for _ in range(runs):
        wait_until(
            lambda after=moment: (
                (c := integration(daemon)["last_checked"]) and datetime.fromisoformat(c) > after
            ),
            timeout=15,
            what="a probe run after the restart",
        )
        moment = datetime.fromisoformat(integration(daemon)["last_checked"])


def sent_triggers(daemon: DaemonProcess) -> bool:
    """Whether the daemon has recorded a trigger as sent: the store commit precedes the count."""
    with urllib.request.urlopen(f"{daemon.url}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return 'action="trigger",outcome="sent"' in text


def trigger_resolve_counts(sim_client: SimClient) -> list[tuple[int, int]]:
    return [(i["trigger_count"], i["resolve_count"]) for i in sim_client.pagerduty_incidents()]


def test_sigkill_mid_outage_neither_pages_twice_nor_loses_the_resolve(
    tmp_path: Path, sim: SimulatorThread, sim_client: SimClient, secrets_env: dict[str, str]
) -> None:
    sim_client.set_scenario("imessage_bridge", "offline", target="dc1")
    first = start(tmp_path, sim, secrets_env, page_after="3s")
    try:
        # Killed only once the send is committed: a kill between PagerDuty's 202 and the
        # commit sends the trigger again after the restart (at-least-once, same dedup key).
        wait_until(lambda: sent_triggers(first), timeout=30, what="the page, recorded as sent")
    finally:
        first.kill()

    second = start(tmp_path, sim, secrets_env, page_after="3s")
    try:
        restarted = datetime.fromisoformat(integration(second)["last_checked"])
        probed_after(second, restarted, runs=3)
        assert trigger_resolve_counts(sim_client) == [(1, 0)]

        sim_client.set_scenario("imessage_bridge", "ok", target="dc1")
        wait_until(
            lambda: trigger_resolve_counts(sim_client) == [(1, 1)], timeout=30, what="the resolve"
        )
    finally:
        assert second.stop() == 0


def test_restart_continues_the_ten_minute_timer_from_the_stored_start(
    tmp_path: Path, sim: SimulatorThread, sim_client: SimClient, secrets_env: dict[str, str]
) -> None:
    sim_client.set_scenario("imessage_bridge", "offline", target="dc1")
    first = start(tmp_path, sim, secrets_env, page_after="10m")
    try:
        since = wait_until(
            lambda: integration(first)["unreachable_since"], timeout=15, what="unreachable_since"
        )
        # The API shows a run before its store commit. A run awaits its own write, and an
        # integration runs once at a time: a later run in the API proves this one stored.
        # (The first run checked after `since` is the one that set it: it started then.)
        probed_after(first, datetime.fromisoformat(since), runs=2)
    finally:
        first.kill()

    second = start(tmp_path, sim, secrets_env, page_after="10m")
    try:
        probed_after(second, datetime.fromisoformat(since), runs=2)
        assert integration(second)["unreachable_since"] == since
        assert sim_client.pagerduty_events() == []
    finally:
        assert second.stop() == 0

"""Three `healthd run` processes on one real PostgreSQL, against the simulator, in real time.

Short everything: probes every second, a 3 s lease (`?lease=3s`: members and the alert
lease), the bridge paged after 3 s. What the PagerDuty simulator receives is the proof:
one trigger and one resolve per outage, whichever replica dies, pauses or loses its
database on the way.
"""

from __future__ import annotations

import json
import random
import signal
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from healthd.cluster.shares import owner
from healthd.sim.app import SimulatorThread
from healthd.sim.client import SimClient
from tests._postgres import PostgresServer
from tests.conftest import (
    ADMIN_TOKEN,
    DaemonProcess,
    base_config,
    bridge,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.e2e

LEASE_HELD = "healthd_cluster_alert_lease_held 1.0"


BRIDGES = 6  # in the probe-count test


@pytest.fixture
def replicas(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sim: SimulatorThread,
    secrets_env: dict[str, str],
    postgres_url: str,
) -> Iterator[list[DaemonProcess]]:
    """Three replicas on this test's database; `@pytest.mark.parametrize("replicas", [N],
    indirect=True)` gives them N bridges (one by default: dc1)."""
    count = getattr(request, "param", 1)
    doc = base_config(
        sim,
        [bridge(sim, f"dc{n + 1}") for n in range(count)],
        store=f"{postgres_url}?lease=3s",
        defaults={"interval": "1s", "timeout": "0.5s", "jitter": "0s", "failure_threshold": 2},
    )
    doc["alerting"]["rules"] = {"bridge_unreachable": {"page_after": "3s"}}
    path = write_config(tmp_path / "healthd.yaml", doc)
    started = [DaemonProcess(path, secrets_env).start() for _ in range(3)]
    yield started  # a test may append replacements; every one is stopped below
    for daemon in started:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.proc.send_signal(signal.SIGCONT)  # one a test paused
            daemon.stop()


def metrics(daemon: DaemonProcess) -> str:
    with urllib.request.urlopen(f"{daemon.url}/metrics", timeout=5) as answer:
        text: str = answer.read().decode()
        return text


def holder(replicas: list[DaemonProcess]) -> DaemonProcess | None:
    holding = [d for d in replicas if d.proc and d.proc.poll() is None and LEASE_HELD in metrics(d)]
    return holding[0] if len(holding) == 1 else None


def pages(sim_client: SimClient) -> Counter[str]:
    return Counter(e["body"]["event_action"] for e in sim_client.pagerduty_events())


def outbox_drained(server: PostgresServer, url: str) -> bool:
    database = url.rsplit("/", 1)[-1]
    count = server.psql(
        "SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')", database
    )
    return count.strip() == "0"


def ready(daemon: DaemonProcess) -> bool:
    try:
        with urllib.request.urlopen(f"{daemon.url}/readyz", timeout=5) as answer:
            return bool(answer.status == 200)
    except urllib.error.HTTPError:
        return False


def test_three_replicas_page_an_outage_once_and_resolve_it_once(
    replicas: list[DaemonProcess], sim_client: SimClient
) -> None:
    wait_until(lambda: holder(replicas), timeout=20, what="one replica holding the lease")
    sim_client.set_scenario("imessage_bridge", "offline", target="dc1")
    wait_until(lambda: pages(sim_client)["trigger"] == 1, timeout=30, what="the trigger")

    sim_client.set_scenario("imessage_bridge", "ok", target="dc1")
    wait_until(lambda: pages(sim_client)["resolve"] == 1, timeout=30, what="the resolve")

    assert pages(sim_client) == Counter(trigger=1, resolve=1)


def test_killing_the_lease_holder_mid_incident_loses_and_repeats_nothing(
    replicas: list[DaemonProcess],
    sim_client: SimClient,
    postgres_server: PostgresServer,
    postgres_url: str,
) -> None:
    sim_client.set_scenario("imessage_bridge", "offline", target="dc1")
    wait_until(lambda: pages(sim_client)["trigger"] == 1, timeout=30, what="the trigger")
    # Killed once the send is recorded: a kill between PagerDuty's 202 and the commit sends
    # it again (at-least-once, same dedup key), which is not what this test is about.
    wait_until(lambda: outbox_drained(postgres_server, postgres_url), timeout=15, what="sent")
    first = wait_until(lambda: holder(replicas), timeout=20, what="the lease holder")
    first.kill()

    survivors = [d for d in replicas if d is not first]
    wait_until(lambda: holder(survivors), timeout=30, what="a survivor taking the lease")
    sim_client.set_scenario("imessage_bridge", "ok", target="dc1")
    wait_until(lambda: pages(sim_client)["resolve"] == 1, timeout=30, what="the resolve")

    assert pages(sim_client) == Counter(trigger=1, resolve=1)


def test_a_replica_paused_past_its_lease_sends_nothing_stale_when_it_wakes(
    replicas: list[DaemonProcess], sim_client: SimClient
) -> None:
    paused = wait_until(lambda: holder(replicas), timeout=20, what="the lease holder")
    assert paused.proc is not None
    paused.proc.send_signal(signal.SIGSTOP)
    others = [d for d in replicas if d is not paused]
    wait_until(lambda: holder(others), timeout=30, what="another replica taking the lease")
    sim_client.set_scenario("imessage_bridge", "offline", target="dc1")
    wait_until(lambda: pages(sim_client)["trigger"] == 1, timeout=30, what="the trigger")
    sim_client.set_scenario("imessage_bridge", "ok", target="dc1")
    wait_until(lambda: pages(sim_client)["resolve"] == 1, timeout=30, what="the resolve")

    paused.proc.send_signal(signal.SIGCONT)
    # It has woken up once it answers again; by then its stale view has had its chance.
    wait_until(lambda: "healthd_cluster_members" in metrics(paused), timeout=20, what="awake")
    wait_until(lambda: holder(replicas), timeout=30, what="one holder after the wake-up")

    assert pages(sim_client) == Counter(trigger=1, resolve=1)


def test_replicas_are_not_ready_while_postgresql_is_away_and_page_once_it_is_back(
    replicas: list[DaemonProcess], sim_client: SimClient, postgres_server: PostgresServer
) -> None:
    assert all(ready(d) for d in replicas)

    postgres_server.stop()
    try:
        for daemon in replicas:
            wait_until(lambda d=daemon: not ready(d), timeout=20, what="not ready")
    finally:
        postgres_server.start()

    for daemon in replicas:
        wait_until(lambda d=daemon: ready(d), timeout=30, what="ready again")
    sim_client.set_scenario("imessage_bridge", "offline", target="dc1")
    wait_until(lambda: pages(sim_client)["trigger"] == 1, timeout=30, what="the trigger")
    sim_client.set_scenario("imessage_bridge", "ok", target="dc1")
    wait_until(lambda: pages(sim_client)["resolve"] == 1, timeout=30, what="the resolve")
    assert pages(sim_client) == Counter(trigger=1, resolve=1)


def bridge_requests(sim_client: SimClient) -> int:
    requests: int = sim_client.describe()["providers"]["imessage_bridge"]["requests"]
    return requests


def last_checks(daemon: DaemonProcess) -> dict[str, str | None]:
    request = urllib.request.Request(
        f"{daemon.url}/api/v1/integrations", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        items = json.load(answer)["integrations"]
    return {i["id"]: i["last_checked"] for i in items}


@pytest.mark.parametrize("replicas", [BRIDGES], indirect=True)
def test_each_integration_is_probed_by_one_replica_per_interval(
    replicas: list[DaemonProcess], sim_client: SimClient
) -> None:
    # A healthy bridge costs one request per probe (server info; the backlog checks come
    # every 2 minutes), whichever replica sends it.
    shares = [wait_until(lambda d=d: share_size(d), timeout=20, what="a share") for d in replicas]
    assert sum(shares) == BRIDGES

    start, began = bridge_requests(sim_client), time.monotonic()
    wait_until(
        lambda: bridge_requests(sim_client) - start >= 5 * BRIDGES, timeout=30, what="probes"
    )
    probes, elapsed = bridge_requests(sim_client) - start, time.monotonic() - began

    # At 1 s intervals one prober each makes BRIDGES probes a second; three would make
    # three times that. A slow machine makes fewer, never more.
    assert probes / elapsed < 1.5 * BRIDGES
    assert all(last_checks(replicas[0]).values())  # any replica sees every integration


def share_size(daemon: DaemonProcess) -> int | None:
    """The replica's share once it sees all three replicas; None before."""
    seen = gauges(daemon)
    if seen.get("healthd_cluster_members") != 3:
        return None
    return int(seen["healthd_cluster_share_size"])


ROUNDS = 2  # outages in the kill loop: bounded, each one a few seconds


def test_killing_replicas_at_random_points_over_several_outages_pages_each_once(
    replicas: list[DaemonProcess], sim_client: SimClient
) -> None:
    # Judged as PagerDuty judges it: one alert opened and resolved per outage. A kill of the
    # lease holder between PagerDuty's 202 and the commit sends the trigger again (at least
    # once, same dedup key); PagerDuty folds that into the open alert, so it pages no one.
    chance = random.Random(13)  # the same points every run
    for round_ in range(1, ROUNDS + 1):
        sim_client.set_scenario("imessage_bridge", "offline", target="dc1")
        kill_at = chance.choice(["before the trigger", "after the trigger"])
        if kill_at == "before the trigger":
            replace_one(replicas, chance)
        wait_until(lambda r=round_: len(alerts(sim_client)) == r, timeout=40, what="trigger")
        if kill_at == "after the trigger":
            replace_one(replicas, chance)
        sim_client.set_scenario("imessage_bridge", "ok", target="dc1")
        wait_until(
            lambda r=round_: alerts(sim_client).count("resolved") == r, timeout=40, what="resolve"
        )

    assert alerts(sim_client) == ["resolved"] * ROUNDS


def alerts(sim_client: SimClient) -> list[str]:
    """The status of each alert PagerDuty opened, oldest first."""
    return [i["status"] for i in sim_client.pagerduty_incidents()]


def replace_one(replicas: list[DaemonProcess], chance: random.Random) -> None:
    """SIGKILL a live replica (the lease holder or not, by chance) and start another."""
    live = [d for d in replicas if d.proc is not None and d.proc.poll() is None]
    victim = chance.choice(live)
    victim.kill()
    replicas.append(DaemonProcess(victim.config_path, victim.env).start())


def info_requests(sim_client: SimClient) -> Counter[str]:
    """Each bridge's probes so far (one `server/info` request each), whoever sent them."""
    return Counter(sim_client.describe()["providers"]["imessage_bridge"]["info_requests"])


@pytest.mark.parametrize("replicas", [BRIDGES], indirect=True)
def test_a_killed_replicas_integrations_are_probed_again_by_the_survivors(
    replicas: list[DaemonProcess],
    sim_client: SimClient,
    postgres_server: PostgresServer,
    postgres_url: str,
) -> None:
    for daemon in replicas:
        wait_until(lambda d=daemon: share_size(d) is not None, timeout=30, what="all three seen")
    # The replicas were started one after the other, so they joined as members 1, 2, 3.
    database = postgres_url.rsplit("/", 1)[-1]
    assert postgres_server.psql("SELECT id FROM members ORDER BY id", database).split() == [
        "1", "2", "3",
    ]  # fmt: skip
    bridges = range(1, BRIDGES + 1)
    shares = {m: [n for n in bridges if owner(f"bridge-dc{n}", [1, 2, 3]) == m] for m in (1, 2, 3)}
    lease_holder = wait_until(lambda: holder(replicas), timeout=30, what="the lease holder")
    member, victim = next(
        (m, d)
        for m, d in zip((1, 2, 3), replicas, strict=True)
        if d is not lease_holder and shares[m]
    )

    victim.kill()
    at_kill = info_requests(sim_client)

    # Two probes each after the kill: one may have been the victim's, under way as it died.
    theirs = [f"dc{n}" for n in shares[member]]
    wait_until(
        lambda: all(info_requests(sim_client)[t] >= at_kill[t] + 2 for t in theirs),
        timeout=30,
        what="the killed replica's bridges probed by the survivors",
    )
    survivors = [d for d in replicas if d is not victim]
    for daemon in survivors:
        wait_until(lambda d=daemon: gauges(d)["healthd_cluster_members"] == 2, 30, what="2 seen")
    assert sum(gauges(d)["healthd_cluster_share_size"] for d in survivors) == BRIDGES


def gauges(daemon: DaemonProcess) -> dict[str, float]:
    """The replica's unlabelled series, by name."""
    pairs = (line.split(" ", 1) for line in metrics(daemon).splitlines() if " " in line)
    return {name: float(value) for name, value in pairs if not name.startswith("#")}

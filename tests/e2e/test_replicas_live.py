"""Run-time changes across three `healthd run` processes on one real PostgreSQL.

What one replica's API is told reaches the others through the database (LISTEN/NOTIFY):
an integration registered through any replica is probed by its owner, once, and listed
by every replica. The probes are counted at the simulator (each bridge probe asks its
`server/info` once, `info_requests`), whichever replica sent them.

Intervals are long (60 s) so that every probe counted is one a change or a check caused,
never a scheduled one; the lease is short (3 s) so that the replicas read each other's
runs back within seconds.
"""

from __future__ import annotations

import json
import signal
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from healthd.sim.app import SimulatorThread
from healthd.sim.client import SimClient
from tests.conftest import ADMIN_TOKEN, DaemonProcess, base_config, wait_until, write_config
from tests.registry.conftest import REGISTRY_KEY, REGISTRY_TOKEN, body

pytestmark = pytest.mark.e2e

REPLICAS = 3
WAIT = 30.0  # seconds, for anything three processes on a loaded machine must do


@pytest.fixture
def replicas(
    tmp_path: Path, sim: SimulatorThread, secrets_env: dict[str, str], postgres_url: str
) -> Iterator[list[DaemonProcess]]:
    """Three replicas with the registry on, no integration in the config file."""
    doc = base_config(
        sim,
        [],
        store=f"{postgres_url}?lease=3s",
        defaults={"interval": "60s", "timeout": "5s", "jitter": "0s"},
        registry={"keys": ["env:HEALTHD_TEST_REGISTRY_KEY"]},
    )
    doc["api"]["tokens"].append(
        {"name": "crm", "role": "registry", "token": "env:HEALTHD_TEST_REGISTRY_TOKEN"}
    )
    env = {
        **secrets_env,
        "HEALTHD_TEST_REGISTRY_KEY": REGISTRY_KEY,
        "HEALTHD_TEST_REGISTRY_TOKEN": REGISTRY_TOKEN,
    }
    path = write_config(tmp_path / "healthd.yaml", doc)
    started = [DaemonProcess(path, env).start() for _ in range(REPLICAS)]
    # Each replica weighs the same owner for an integration once all see the same members.
    for daemon in started:
        wait_until(lambda d=daemon: members(d) == REPLICAS, WAIT, what="every replica seen")
    yield started
    for daemon in started:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.proc.send_signal(signal.SIGCONT)
            daemon.stop()


def call(daemon: DaemonProcess, method: str, path: str, payload: Any = None) -> Any:
    token = REGISTRY_TOKEN if method in ("PUT", "DELETE") else ADMIN_TOKEN
    req = urllib.request.Request(
        daemon.url + path,
        data=None if payload is None else json.dumps(payload).encode(),
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=WAIT) as answer:
        text = answer.read()
    return json.loads(text) if text else None


def members(daemon: DaemonProcess) -> float:
    with urllib.request.urlopen(f"{daemon.url}/metrics", timeout=WAIT) as answer:
        lines = answer.read().decode().splitlines()
    found = [ln.split(" ")[1] for ln in lines if ln.startswith("healthd_cluster_members ")]
    return float(found[0]) if found else 0.0


def listed(daemon: DaemonProcess) -> dict[str, str | None]:
    """Every integration the replica's API lists, with its last check."""
    items = call(daemon, "GET", "/api/v1/integrations?limit=1000")["integrations"]
    return {i["id"]: i["last_checked"] for i in items}


def info_requests(sim_client: SimClient) -> dict[str, int]:
    counts: dict[str, int] = sim_client.describe()["providers"]["imessage_bridge"]["info_requests"]
    return counts


TARGETS = [f"reg{n}" for n in range(6)]
IDS = [f"crm-{t}" for t in TARGETS]


def register(sim: SimulatorThread, daemon: DaemonProcess) -> None:
    items = [body(sim, t) | {"id": f"crm-{t}"} for t in TARGETS]
    answer = call(daemon, "PUT", "/api/v1/tenants/acme/integrations", {"integrations": items})
    assert sorted(answer["created"]) == IDS


def registered_and_read_back(
    sim: SimulatorThread, replicas: list[DaemonProcess]
) -> dict[str, str | None]:
    """Registers the bridges through the first replica and waits until every replica lists
    each with its last check, read back from the database seconds after the probes: from
    then on, any probe counted is one a later change or check caused."""
    register(sim, replicas[0])
    for daemon in replicas:
        wait_until(
            lambda d=daemon: all(listed(d).get(i) for i in IDS), WAIT, what="listed as probed"
        )
    return listed(replicas[0])


def conflicts_logged(replicas: list[DaemonProcess]) -> list[dict[str, Any]]:
    """The runs the compare-and-set refused (a run by a replica that does not own the
    integration) that any replica logged up to now. Drained first: one more registry
    change, logged by every replica once it heard it, comes after those lines."""
    call(replicas[0], "DELETE", f"/api/v1/integrations/{IDS[-1]}")
    for daemon in replicas:
        wait_until(
            lambda d=daemon: any(
                line.get("event") == "registry_changed" and line.get("removed") == 1
                for line in d.lines
            ),
            WAIT,
            what="the drain's change logged",
        )
    return [ln for d in replicas for ln in d.lines if ln.get("event") == "store_state_conflict"]


def test_an_integration_registered_through_one_replica_is_probed_once_and_listed_by_all(
    replicas: list[DaemonProcess], sim: SimulatorThread, sim_client: SimClient
) -> None:
    registered_and_read_back(sim, replicas)

    assert info_requests(sim_client) == dict.fromkeys(TARGETS, 1)
    assert conflicts_logged(replicas) == []


def test_an_integration_removed_through_another_replica_leaves_every_replica(
    replicas: list[DaemonProcess], sim: SimulatorThread
) -> None:
    register(sim, replicas[0])
    for daemon in replicas:
        wait_until(lambda d=daemon: set(IDS) <= set(listed(d)), WAIT, what="listed")

    call(replicas[1], "DELETE", f"/api/v1/integrations/{IDS[0]}")

    for daemon in replicas:
        wait_until(lambda d=daemon: IDS[0] not in listed(d), WAIT, what="gone from the list")
    assert all(set(listed(d)) == set(IDS[1:]) for d in replicas)


def check(daemon: DaemonProcess, path: str) -> dict[str, dict[str, Any]]:
    answer = call(daemon, "POST", path)
    return {i["id"]: i for i in answer["integrations"]}


def test_a_tenant_check_sent_to_two_replicas_at_once_probes_each_integration_once(
    replicas: list[DaemonProcess], sim: SimulatorThread, sim_client: SimClient
) -> None:
    before = registered_and_read_back(sim, replicas)
    assert info_requests(sim_client) == dict.fromkeys(TARGETS, 1)
    # Each probe takes a second at the bridge: the second replica's request reaches the
    # owner while the first's run is under way, and joins it.
    sim_client.set_scenario("imessage_bridge", "slow", delay=1)

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda d: check(d, "/api/v1/tenants/acme/check"), replicas[1:]))

    for answer in answers:
        assert all(answer[i]["fresh"] for i in IDS)
        assert all(answer[i]["last_checked"] > before[i] for i in IDS)
    assert info_requests(sim_client) == dict.fromkeys(TARGETS, 2)
    assert conflicts_logged(replicas) == []


def test_an_integration_checked_through_every_replica_is_probed_once_per_check(
    replicas: list[DaemonProcess], sim: SimulatorThread, sim_client: SimClient
) -> None:
    before = registered_and_read_back(sim, replicas)
    assert info_requests(sim_client)[TARGETS[0]] == 1

    answers = [check(d, f"/api/v1/integrations/{IDS[0]}/check") for d in replicas]

    assert all(a[IDS[0]]["fresh"] for a in answers)
    checked = [a[IDS[0]]["last_checked"] for a in answers]
    assert before[IDS[0]] < checked[0] < checked[1] < checked[2]
    assert info_requests(sim_client)[TARGETS[0]] == 1 + len(replicas)
    assert conflicts_logged(replicas) == []  # each run was its owner's

"""The registry against `healthd run` as a real process, the simulator and its PagerDuty.

1,000 integrations are registered through the API while the daemon probes (ten tenants'
sets of 100, one in ten with a wrong password and `page: true`, so it pages); each is
probed at once and shows in the API and `/metrics`. Half are removed (five tenants' sets
emptied): their incidents resolve once and their series leave `/metrics`. Then a restart:
every registration is still there, and no open incident is paged again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from healthd.sim.app import SimulatorThread
from healthd.sim.client import SimClient
from healthd.vault import new_key
from tests.conftest import ADMIN_TOKEN, REPO, DaemonProcess, wait_until, write_config
from tests.registry.conftest import REGISTRY_KEY, REGISTRY_TOKEN, body, registry_config

pytestmark = pytest.mark.e2e

TENANTS = [f"t{n}" for n in range(10)]
PER_TENANT = 100
REMOVED = TENANTS[:5]


def request(daemon: DaemonProcess, method: str, path: str, payload: Any = None) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    token = REGISTRY_TOKEN if method == "PUT" else ADMIN_TOKEN
    req = urllib.request.Request(
        daemon.url + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as answer:
        return json.loads(answer.read())


def metrics(daemon: DaemonProcess) -> str:
    with urllib.request.urlopen(f"{daemon.url}/metrics", timeout=30) as answer:
        return str(answer.read().decode())


def fleet_count(text: str, status: str) -> float:
    """`healthd_integrations{provider="imessage_bridge",status=...}` in a scrape."""
    series = f'healthd_integrations{{provider="imessage_bridge",status="{status}"}} '
    line = next((ln for ln in text.splitlines() if ln.startswith(series)), None)
    return float(line.removeprefix(series)) if line else 0.0


STATUSES = ("ok", "degraded", "failing", "unreachable", "unknown")


def fleet_total(text: str) -> float:
    """Every bridge the fleet counts, whatever its status: a kept one still settling (a
    first probe under way) moves between statuses, never in or out of this total."""
    return sum(fleet_count(text, status) for status in STATUSES)


def tenant_etag(daemon: DaemonProcess, tenant: str) -> str:
    return str(request(daemon, "GET", f"/api/v1/tenants/{tenant}/integrations")["etag"])


def tenant_set(sim: SimulatorThread, tenant: str) -> list[dict[str, Any]]:
    items = []
    for n in range(PER_TENANT):
        item = body(sim, f"{tenant}-{n}", tenant=tenant) | {"id": f"crm-{tenant}-{n}"}
        if n % 10 == 0:  # pages: a wrong password fails at once
            item |= {"page": True, "failure_threshold": 1, "credentials": {"password": "wrong!!"}}
        items.append(item)
    return items


def paging_ids(tenants: list[str]) -> set[str]:
    return {f"crm-{t}-{n}" for t in tenants for n in range(0, PER_TENANT, 10)}


def incidents_by_integration(sim_client: SimClient) -> dict[str, tuple[int, int]]:
    """(triggers, resolves) per paged integration, from the simulated PagerDuty."""
    out = {}
    for incident in sim_client.pagerduty_incidents():
        for iid in paging_ids(TENANTS):
            if incident["dedup_key"].rsplit("/", 1)[-1] == iid:
                out[iid] = (incident["trigger_count"], incident["resolve_count"])
    return out


def listing(daemon: DaemonProcess) -> list[dict[str, Any]]:
    """Every integration, page by page (pages of 1,000, following `next_cursor`)."""
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = "?limit=1000" + (f"&cursor={cursor}" if cursor else "")
        answer = request(daemon, "GET", f"/api/v1/integrations{query}")
        out += answer["integrations"]
        cursor = answer["next_cursor"]
        if cursor is None:
            return out


def all_probed(daemon: DaemonProcess, expected: set[str]) -> bool:
    listed = listing(daemon)
    probed = {i["id"] for i in listed if i["last_checked"] is not None}
    return expected <= probed


def test_a_thousand_registered_live_half_removed_then_a_restart(
    tmp_path: Path, sim: SimulatorThread, sim_client: SimClient, secrets_env: dict[str, str]
) -> None:
    doc = registry_config(sim, tmp_path / "healthd.db")
    doc["defaults"] = {**doc["defaults"], "interval": "60s", "timeout": "5s"}
    env = {
        **secrets_env,
        "HEALTHD_TEST_REGISTRY_KEY": REGISTRY_KEY,
        "HEALTHD_TEST_REGISTRY_TOKEN": REGISTRY_TOKEN,
    }
    config = write_config(tmp_path / "healthd.yaml", doc)
    registered = {f"crm-{t}-{n}" for t in TENANTS for n in range(PER_TENANT)}
    kept = {i for i in registered if i.split("-")[1] not in REMOVED}

    daemon = DaemonProcess(config, env).start()
    try:
        for tenant in TENANTS:
            answer = request(
                daemon,
                "PUT",
                f"/api/v1/tenants/{tenant}/integrations",
                {"integrations": tenant_set(sim, tenant)},
            )
            assert len(answer["created"]) == PER_TENANT
        wait_until(lambda: all_probed(daemon, registered), 60, 0.5, "every registration probed")
        # An ok integration is counted by provider and status; one that fails has its own
        # series too (healthd.metrics, the series budget).
        text = metrics(daemon)
        ok_before = fleet_count(text, "ok")
        total_before = fleet_total(text)
        assert ok_before >= len(registered) - len(paging_ids(TENANTS))
        assert fleet_count(text, "failing") == len(paging_ids(TENANTS))
        assert all(f'integration="{i}"' in text for i in paging_ids(TENANTS))
        wait_until(
            lambda: len(incidents_by_integration(sim_client)) == len(paging_ids(TENANTS)),
            60,
            0.5,
            "a page for every failing registration",
        )

        for tenant in REMOVED:
            answer = request(
                daemon, "PUT", f"/api/v1/tenants/{tenant}/integrations", {"integrations": []}
            )
            assert len(answer["removed"]) == PER_TENANT
        removed_pages = paging_ids(REMOVED)
        wait_until(
            lambda: all(incidents_by_integration(sim_client)[i] == (1, 1) for i in removed_pages),
            30,
            0.5,
            "the removed registrations' incidents resolved",
        )
        wait_until(
            lambda: fleet_count(metrics(daemon), "failing") == len(paging_ids(TENANTS[5:])),
            5,
            0.2,
            "the removed ones' series gone (scrapes share a rendering for a second)",
        )
        text = metrics(daemon)
        assert not any(f'integration="{i}"' in text for i in registered - kept)
        assert total_before - fleet_total(text) == len(registered - kept)
        # The ok ones removed left the ok count (a kept one may have settled into it since).
        removed_ok = len(registered - kept) - len(paging_ids(REMOVED))
        assert ok_before - fleet_count(text, "ok") <= removed_ok
        listed = {i["id"] for i in listing(daemon)}
        assert kept <= listed and not listed & (registered - kept)
        etags = {
            t: request(daemon, "GET", f"/api/v1/tenants/{t}/integrations")["etag"] for t in TENANTS
        }
    finally:
        assert daemon.stop() == 0

    before = incidents_by_integration(sim_client)
    daemon = DaemonProcess(config, env).start()
    try:
        assert {t: tenant_etag(daemon, t) for t in TENANTS} == etags
        # The paging ones have an incident open: they are probed first after the restart.
        wait_until(
            lambda: all_probed(daemon, paging_ids(TENANTS[5:])), 30, 0.5, "a probe after restart"
        )
        open_incidents = request(daemon, "GET", "/api/v1/incidents?open=true&limit=500")
        assert open_incidents["count"] == len(paging_ids(TENANTS[5:]))
        wait_until(
            lambda: (
                "healthd_alert_outbox_pending{" not in metrics(daemon)
                or 'healthd_alert_outbox_pending{channel="pagerduty"} 0.0' in metrics(daemon)
            ),
            30,
            0.5,
            "the outbox drained",
        )
    finally:
        assert daemon.stop() == 0
    assert incidents_by_integration(sim_client) == before
    assert all(before[i] == (1, 0) for i in paging_ids(TENANTS[5:]))


def test_a_registry_sealed_under_a_key_that_is_gone_stops_the_start_with_exit_2(
    tmp_path: Path, sim: SimulatorThread, secrets_env: dict[str, str]
) -> None:
    doc = registry_config(sim, tmp_path / "healthd.db")
    env = {
        **secrets_env,
        "HEALTHD_TEST_REGISTRY_KEY": REGISTRY_KEY,
        "HEALTHD_TEST_REGISTRY_TOKEN": REGISTRY_TOKEN,
    }
    config = write_config(tmp_path / "healthd.yaml", doc)
    daemon = DaemonProcess(config, env).start()
    try:
        request(daemon, "PUT", "/api/v1/integrations/crm-1", body(sim, "a1"))
    finally:
        assert daemon.stop() == 0

    wrong = subprocess.run(
        [sys.executable, "-m", "healthd", "run", "--config", str(config)],
        env={**os.environ, **env, "HEALTHD_TEST_REGISTRY_KEY": new_key()},
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert wrong.returncode == 2
    assert "crm-1.credentials.password is sealed under key" in wrong.stderr
    assert "is not in registry.keys" in wrong.stderr and "Traceback" not in wrong.stderr

    again = DaemonProcess(config, env).start()  # nothing was lost: the right key opens it
    try:
        assert request(again, "GET", "/api/v1/integrations/crm-1")["id"] == "crm-1"
    finally:
        assert again.stop() == 0

"""POST .../check: fresh results within the bound, one shared run, the per-token rate limit."""

from __future__ import annotations

import asyncio

import pytest

from healthd.sim.app import SimulatorThread
from healthd.sim.client import SimClient
from tests.api.conftest import (
    ACME_TOKEN,
    GLOBEX_TOKEN,
    assert_problem,
    call,
    fleet_config,
)
from tests.conftest import bridge, running_daemon

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("secrets_env")]

ONE = "/api/v1/integrations/bridge-acme1/check"


def bridge_requests(sim_client: SimClient) -> int:
    count: int = sim_client.describe()["providers"]["imessage_bridge"]["requests"]
    return count


async def test_live_check_answers_with_the_result_of_a_new_run(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    async with running_daemon(fleet_config(sim, failure_threshold=1)) as d:
        await d.runner.run_once("bridge-acme1")
        sim_client.set_scenario("imessage_bridge", "signed_out", target="acme1")
        answer = await call(d.url, "POST", ONE)

    assert answer.status == 200
    [view] = answer.json["integrations"]
    assert view["fresh"] is True
    assert view["status"] == "failing"
    assert [p["code"] for p in view["problems"]] == ["bridge.imessage_signed_out"]


async def test_tenant_check_runs_every_integration_of_that_tenant_and_no_other(
    sim: SimulatorThread,
) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        answer = await call(d.url, "POST", "/api/v1/tenants/acme/check", ACME_TOKEN)
        checked = {i for i, s in d.runner.states.items() if s.last_checked is not None}

    assert sorted(v["id"] for v in answer.json["integrations"]) == ["bridge-acme1", "bridge-acme2"]
    assert all(v["fresh"] and v["status"] == "ok" for v in answer.json["integrations"])
    assert checked == {"bridge-acme1", "bridge-acme2"}


async def test_concurrent_checks_of_one_integration_share_one_probe_run(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    async with running_daemon(fleet_config(sim, timeout="5s")) as d:
        before = bridge_requests(sim_client)
        await d.runner.run_once("bridge-acme1")
        first_run = bridge_requests(sim_client) - before
        before = bridge_requests(sim_client)
        await d.runner.run_once("bridge-acme1")
        backlog_kept = bridge_requests(sim_client) - before  # the backlog is checked every 2m
        # Slow answers keep the first run under way while the other requests arrive.
        sim_client.set_scenario("imessage_bridge", "slow", target="acme1", delay=0.4)
        before = bridge_requests(sim_client)
        answers = await asyncio.gather(
            *(call(d.url, "POST", ONE, ACME_TOKEN) for _ in range(3)),
            call(d.url, "POST", "/api/v1/tenants/acme/check", ACME_TOKEN),
            call(d.url, "POST", ONE),
        )
        during = bridge_requests(sim_client) - before

    assert [a.status for a in answers] == [200] * 5
    runs = {
        v["last_checked"]
        for a in answers
        for v in a.json["integrations"]
        if v["id"] == "bridge-acme1"
    }
    assert len(runs) == 1
    # acme1 ran once more (its backlog still kept); acme2 ran once, its first run.
    assert 0 < backlog_kept < first_run and during == backlog_kept + first_run


async def test_live_check_answers_within_the_probe_timeout_when_the_provider_hangs(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    sim_client.set_scenario("imessage_bridge", "hanging", target="acme1")
    async with running_daemon(fleet_config(sim, timeout="1s", failure_threshold=1)) as d:
        async with asyncio.timeout(1 + 1 + 5):  # timeout, the API's slack, a noisy machine
            answer = await call(d.url, "POST", ONE)

    [view] = answer.json["integrations"]
    assert view["fresh"] is True
    assert view["status"] == "unreachable"
    assert [p["code"] for p in view["problems"]][0] in ("healthd.probe_timeout", "bridge.timeout")


async def test_runs_still_queued_at_the_bound_answer_their_previous_result_as_not_fresh(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    """Two probe slots, three hanging 2 s probes, each ending at its own deadline share
    (1.8 s): the third starts after 1.8 s, ends after 3.6 s, and the bound is 3 s (the
    slowest timeout plus one second of slack)."""
    doc = fleet_config(sim, timeout="2s")
    doc["integrations"].append(bridge(sim, "acme3", tenant="acme", timeout="2s"))
    doc["defaults"]["concurrency"] = 2
    sim_client.set_scenario("imessage_bridge", "hanging")
    async with running_daemon(doc) as d:
        async with asyncio.timeout(2 + 1 + 5):
            answer = await call(d.url, "POST", "/api/v1/tenants/acme/check")
        fresh = {v["id"]: v["fresh"] for v in answer.json["integrations"]}
        stale = [v for v in answer.json["integrations"] if not v["fresh"]]
        async with asyncio.timeout(10):  # the queued run goes on and lands in the state
            while d.runner.states[stale[0]["id"]].last_checked is None:
                await asyncio.sleep(0.05)

    assert sorted(fresh.values()) == [False, True, True]
    assert stale[0]["status"] == "unknown" and stale[0]["last_checked"] is None


async def test_check_beyond_the_rate_limit_is_429_with_retry_after(sim: SimulatorThread) -> None:
    async with running_daemon(fleet_config(sim, api={"check_rate_limit": 2})) as d:
        allowed = [await call(d.url, "POST", ONE, ACME_TOKEN) for _ in range(2)]
        limited = await call(d.url, "POST", "/api/v1/tenants/acme/check", ACME_TOKEN)

    assert [a.status for a in allowed] == [200, 200]
    body = assert_problem(limited, 429)
    assert "2 per minute" in body["detail"]
    assert 1 <= int(limited.headers["Retry-After"]) <= 60


async def test_rate_limit_counts_per_token(sim: SimulatorThread) -> None:
    async with running_daemon(fleet_config(sim, api={"check_rate_limit": 1})) as d:
        first = await call(d.url, "POST", ONE, ACME_TOKEN)
        second = await call(d.url, "POST", ONE, ACME_TOKEN)
        other_token = await call(d.url, "POST", "/api/v1/tenants/globex/check", GLOBEX_TOKEN)

    assert (first.status, second.status, other_token.status) == (200, 429, 200)


async def test_checks_of_ids_a_token_cannot_see_are_404_and_never_run(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        before = bridge_requests(sim_client)
        other = await call(d.url, "POST", "/api/v1/integrations/bridge-globex1/check", ACME_TOKEN)
        other_tenant = await call(d.url, "POST", "/api/v1/tenants/globex/check", ACME_TOKEN)
        missing = await call(d.url, "POST", "/api/v1/tenants/nobody/check", ACME_TOKEN)
        ran = bridge_requests(sim_client) - before

    assert_problem(other, 404)
    assert_problem(other_tenant, 404)
    assert assert_problem(missing, 404)["detail"] == assert_problem(other_tenant, 404)[
        "detail"
    ].replace("globex", "nobody")
    assert ran == 0

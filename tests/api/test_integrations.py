"""GET /api/v1/integrations and /api/v1/integrations/{id} on the real daemon and simulator."""

from __future__ import annotations

import pytest

from healthd.daemon import Daemon
from healthd.registry import probe_class
from healthd.sim.app import SimulatorThread
from healthd.sim.client import SimClient
from tests.api.conftest import (
    ACME,
    ACME_TOKEN,
    FLEET,
    GLOBEX,
    assert_problem,
    call,
    fleet_config,
)
from tests.conftest import ADMIN_TOKEN, BRIDGE_PASSWORD, TENANT_TOKENS, running_daemon

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("secrets_env")]


async def sweep(d: Daemon) -> None:
    await d.runner.run_many(list(d.runner.integrations))


async def test_integration_view_has_status_since_last_checked_and_findings_with_fixes(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    sim_client.set_scenario("imessage_bridge", "auth_fail", target="acme1")
    async with running_daemon(fleet_config(sim, failure_threshold=1)) as d:
        await sweep(d)
        view = (await call(d.url, "GET", "/api/v1/integrations/bridge-acme1")).json

    assert view["id"] == "bridge-acme1" and view["tenant"] == ACME
    assert view["provider"] == "imessage_bridge"
    assert view["status"] == "failing"
    assert view["since"] and view["last_checked"]
    [problem] = view["problems"]
    assert problem["code"] == "bridge.auth_invalid"
    assert problem["summary"] and problem["remediation"]
    assert problem in view["findings"]


async def test_integration_answer_carries_its_transitions_newest_first(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    sim_client.set_scenario("imessage_bridge", "auth_fail", target="acme1")
    config = fleet_config(sim, failure_threshold=1, success_threshold=1)
    async with running_daemon(config) as d:
        await sweep(d)
        sim_client.reset()
        await sweep(d)
        view = (await call(d.url, "GET", "/api/v1/integrations/bridge-acme1", ACME_TOKEN)).json
        listed = (await call(d.url, "GET", "/api/v1/integrations")).json

    history = [(t["kind"], t["from_status"], t["to_status"]) for t in view["transitions"]]
    assert history == [("recovered", "failing", "ok"), ("failed", "unknown", "failing")]
    assert view["transitions"][0]["at"] >= view["transitions"][1]["at"]
    assert all("transitions" not in v for v in listed["integrations"])  # one's own answer only


async def test_another_tenants_transitions_are_not_found(sim: SimulatorThread) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        await sweep(d)
        answer = await call(d.url, "GET", "/api/v1/integrations/bridge-globex1", ACME_TOKEN)

    assert_problem(answer, 404)


async def test_answers_name_the_provider_as_its_probe_class_does(sim: SimulatorThread) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        listed = (await call(d.url, "GET", "/api/v1/integrations")).json
        one = (await call(d.url, "GET", "/api/v1/integrations/bridge-acme1")).json
        live = (await call(d.url, "POST", "/api/v1/integrations/bridge-acme1/check")).json

    expected = probe_class("imessage_bridge").traits.display_name
    names = [v["provider_name"] for v in [*listed["integrations"], one, *live["integrations"]]]
    assert names == [expected] * (len(FLEET) + 2)


async def test_admin_list_holds_every_integration_and_a_count(sim: SimulatorThread) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        await sweep(d)
        body = (await call(d.url, "GET", "/api/v1/integrations")).json

    assert sorted(v["id"] for v in body["integrations"]) == sorted(FLEET)
    assert body["count"] == len(FLEET)
    assert {v["status"] for v in body["integrations"]} == {"ok"}


async def test_tenant_list_holds_only_its_own_tenant(sim: SimulatorThread) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        body = (await call(d.url, "GET", "/api/v1/integrations", ACME_TOKEN)).json

    assert sorted(v["id"] for v in body["integrations"]) == ["bridge-acme1", "bridge-acme2"]


async def test_answers_with_a_tokens_data_are_never_cached(sim: SimulatorThread) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        answer = await call(d.url, "GET", "/api/v1/integrations/bridge-acme1", ACME_TOKEN)

    assert answer.status == 200
    assert answer.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("tenant=acme", ["bridge-acme1", "bridge-acme2"]),
        ("tenant=platform", ["bridge-dc1"]),
        ("tenant=nobody", []),
        ("provider=imessage_bridge", sorted(FLEET)),
        ("status=failing", ["bridge-acme1"]),
        ("status=ok&tenant=acme", ["bridge-acme2"]),
        ("status=degraded", []),
    ],
)
async def test_list_filters_by_tenant_provider_and_status(
    sim: SimulatorThread, sim_client: SimClient, query: str, expected: list[str]
) -> None:
    sim_client.set_scenario("imessage_bridge", "auth_fail", target="acme1")
    async with running_daemon(fleet_config(sim, failure_threshold=1)) as d:
        await sweep(d)
        body = (await call(d.url, "GET", f"/api/v1/integrations?{query}")).json

    assert sorted(v["id"] for v in body["integrations"]) == expected


async def test_tenant_filter_naming_another_tenant_is_empty_like_an_unknown_tenant(
    sim: SimulatorThread,
) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        other = await call(d.url, "GET", f"/api/v1/integrations?tenant={GLOBEX}", ACME_TOKEN)
        unknown = await call(d.url, "GET", "/api/v1/integrations?tenant=nobody", ACME_TOKEN)

    assert other.status == unknown.status == 200
    assert other.json == unknown.json
    assert (other.json["integrations"], other.json["count"]) == ([], 0)


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("status=broken", "status"),
        ("status=", "status"),
        ("provider=carrier-pigeon", "provider"),
        ("tenant=", "tenant"),
        ("tenant=%20acme", "tenant"),
        ("tenant=" + "a" * 101, "tenant"),
        ("tenant=acme%00", "tenant"),
        ("tenant=acme&tenant=globex", "tenant"),
        ("colour=red", "colour"),
        ("%ff=1", "unknown query parameter"),
    ],
)
async def test_bad_filter_is_a_400_problem_naming_the_parameter(
    sim: SimulatorThread, query: str, names: str
) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        answer = await call(d.url, "GET", f"/api/v1/integrations?{query}")

    body = assert_problem(answer, 400)
    assert names in body["detail"]


async def test_bad_status_filter_lists_the_accepted_values(sim: SimulatorThread) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        body = assert_problem(await call(d.url, "GET", "/api/v1/integrations?status=red"), 400)

    assert "degraded, failing, ok, unknown, unreachable" in body["detail"]


async def test_unknown_integration_is_a_404_problem_naming_the_id(sim: SimulatorThread) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        answer = await call(d.url, "GET", "/api/v1/integrations/bridge-nowhere")

    assert "'bridge-nowhere'" in assert_problem(answer, 404)["detail"]


@pytest.mark.parametrize(
    "raw_id",
    [
        "x" * 4000,
        "%00",
        "bridge-acme1%00",
        "%ff%fe",
        "%E2%9C%93-%F0%9F%94%A5",
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e",
        "bridge-acme1%20",
        "'%22%3Cscript%3E",
        "%0d%0aSet-Cookie:%20x=1",
    ],
)
@pytest.mark.parametrize("method,suffix", [("GET", ""), ("POST", "/check")])
async def test_odd_ids_answer_a_4xx_problem_never_a_5xx(
    sim: SimulatorThread, raw_id: str, method: str, suffix: str
) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        answer = await call(d.url, method, f"/api/v1/integrations/{raw_id}{suffix}")

    body = assert_problem(answer, 404)
    assert len(body["detail"]) < 300
    assert "Set-Cookie" not in answer.headers


async def test_no_answer_carries_a_secret(sim: SimulatorThread, sim_client: SimClient) -> None:
    sim_client.set_scenario("imessage_bridge", "auth_fail", target="acme1")
    sim_client.set_scenario("imessage_bridge", "offline", target="acme2")
    sim_client.set_scenario("imessage_bridge", "html", target="globex1")
    secrets = [BRIDGE_PASSWORD, ADMIN_TOKEN, *TENANT_TOKENS.values()]
    async with running_daemon(fleet_config(sim, failure_threshold=1)) as d:
        await sweep(d)
        answers = [
            await call(d.url, "GET", "/api/v1/integrations"),
            *[await call(d.url, "GET", f"/api/v1/integrations/{i}") for i in FLEET],
            await call(d.url, "POST", "/api/v1/tenants/acme/check"),
            await call(d.url, "GET", "/api/v1/me"),
            await call(d.url, "GET", "/openapi.json"),
        ]

    assert all(a.status == 200 for a in answers)
    for answer in answers:
        assert not [s for s in secrets if s in answer.text]

"""The rest of the listener: tokens, /me, error codes, incidents, health and metrics, routing
errors, the status page shell, and the OpenAPI document covering every route."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from healthd.api import schemas
from healthd.api.openapi import openapi_document
from healthd.clock import FakeClock
from healthd.daemon import Daemon
from healthd.registry import probes
from healthd.sim.app import SimulatorThread
from healthd.sim.client import SimClient
from tests.api.conftest import (
    ACME,
    ACME_TOKEN,
    FLEET,
    GLOBEX_TOKEN,
    assert_problem,
    call,
    fleet_config,
)
from tests.conftest import ADMIN_TOKEN, running_daemon

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("secrets_env")]

API_PATHS = [
    ("GET", "/api/v1/me"),
    ("GET", "/api/v1/integrations"),
    ("GET", "/api/v1/integrations/bridge-acme1"),
    ("POST", "/api/v1/integrations/bridge-acme1/check"),
    ("POST", "/api/v1/tenants/acme/check"),
    ("GET", "/api/v1/errors/imessage_bridge/bridge.auth_invalid"),
    ("GET", "/api/v1/incidents"),
]


# -- tokens ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), API_PATHS)
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer ", "Bearer wrong-token-0123456789", f"Basic {ADMIN_TOKEN}"],
)
async def test_api_without_a_valid_bearer_token_is_401_with_www_authenticate(
    sim: SimulatorThread, method: str, path: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with running_daemon(fleet_config(sim)) as d:
        answer = await call(d.url, method, path, token=None, headers=headers)

    assert_problem(answer, 401)
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (ADMIN_TOKEN, {"name": "ops", "role": "admin", "tenant": None}),
        (ACME_TOKEN, {"name": "acme-settings", "role": "tenant", "tenant": ACME}),
    ],
)
async def test_me_says_which_token_this_is(
    sim: SimulatorThread, token: str, expected: dict[str, Any]
) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        answer = await call(d.url, "GET", "/api/v1/me", token)

    assert answer.json == expected


# -- error codes ----------------------------------------------------------------------------


async def test_explain_answers_meaning_fix_and_category(sim: SimulatorThread) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        answer = await call(d.url, "GET", "/api/v1/errors/imessage_bridge/bridge.auth_invalid")

    entry = answer.json
    assert (entry["provider"], entry["code"]) == ("imessage_bridge", "bridge.auth_invalid")
    assert entry["fix"] and entry["meaning"] and entry["category"] == "account"


@pytest.mark.parametrize(
    "path", ["imessage_bridge/no.such.code", "carrier-pigeon/1", "twilio/%00", "x/" + "9" * 3000]
)
async def test_explain_unknown_code_is_a_404_problem(sim: SimulatorThread, path: str) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        answer = await call(d.url, "GET", f"/api/v1/errors/{path}")

    assert "no catalogue entry" in assert_problem(answer, 404)["detail"]


# -- incidents ------------------------------------------------------------------------------


async def open_incidents(d: Daemon, clock: FakeClock, sim_client: SimClient) -> None:
    """A paging acme bridge that fails, and the platform bridge away for 12 minutes."""
    sim_client.set_scenario("imessage_bridge", "auth_fail", target="acme1")
    sim_client.set_scenario("imessage_bridge", "offline", target="dc1")
    for _ in range(13):
        clock.advance(timedelta(minutes=1))
        await d.runner.run_many(["bridge-acme1", "bridge-dc1"])
    await d.engine.evaluate()


def incident_config(sim: SimulatorThread) -> dict[str, Any]:
    doc = fleet_config(sim)
    doc["integrations"][0]["page"] = True  # bridge-acme1 pages on failure
    return doc


async def test_incidents_list_open_ones_with_rule_summary_and_owner(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    clock = FakeClock()
    async with running_daemon(incident_config(sim), clock=clock) as d:
        await open_incidents(d, clock, sim_client)
        body = (await call(d.url, "GET", "/api/v1/incidents")).json

    by_rule = {i["rule"]: i for i in body["incidents"]}
    assert set(by_rule) == {"integration_failing", "bridge_unreachable"}
    assert by_rule["integration_failing"]["tenant"] == ACME
    assert by_rule["integration_failing"]["integration"] == "bridge-acme1"
    assert by_rule["bridge_unreachable"]["open"] is True
    assert by_rule["bridge_unreachable"]["summary"]


@pytest.mark.parametrize(
    ("token", "rules"),
    [
        (ACME_TOKEN, ["integration_failing"]),
        (GLOBEX_TOKEN, []),
        (ADMIN_TOKEN, ["bridge_unreachable", "integration_failing"]),
    ],
)
async def test_a_tenant_token_sees_only_its_own_tenants_incidents(
    sim: SimulatorThread, sim_client: SimClient, token: str, rules: list[str]
) -> None:
    clock = FakeClock()
    async with running_daemon(incident_config(sim), clock=clock) as d:
        await open_incidents(d, clock, sim_client)
        body = (await call(d.url, "GET", "/api/v1/incidents", token)).json

    assert sorted(i["rule"] for i in body["incidents"]) == rules


async def test_incidents_open_filter_and_limit(sim: SimulatorThread, sim_client: SimClient) -> None:
    clock = FakeClock()
    async with running_daemon(incident_config(sim), clock=clock) as d:
        await open_incidents(d, clock, sim_client)
        sim_client.set_scenario("imessage_bridge", "ok", target="acme1")
        for _ in range(3):
            clock.advance(timedelta(minutes=1))
            await d.runner.run_once("bridge-acme1")
        await d.engine.evaluate()
        resolved = (await call(d.url, "GET", "/api/v1/incidents?open=false")).json
        still_open = (await call(d.url, "GET", "/api/v1/incidents?open=true")).json
        one = (await call(d.url, "GET", "/api/v1/incidents?limit=1")).json

    assert [i["rule"] for i in resolved["incidents"]] == ["integration_failing"]
    assert resolved["incidents"][0]["resolved_at"]
    assert [i["rule"] for i in still_open["incidents"]] == ["bridge_unreachable"]
    assert one["count"] == 1


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=501", "limit=-1", "limit=abc", "limit=1e3", "open=yes", "x=1"]
)
async def test_bad_incident_query_is_a_400_problem(sim: SimulatorThread, query: str) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        assert_problem(await call(d.url, "GET", f"/api/v1/incidents?{query}"), 400)


# -- health and metrics ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
async def test_health_and_metrics_are_public_by_default(sim: SimulatorThread, path: str) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        answer = await call(d.url, "GET", path, token=None)

    assert answer.status == 200


@pytest.mark.parametrize(
    ("setting", "closed", "still_open"),
    [
        ("metrics_require_token", ["/metrics"], ["/healthz", "/readyz"]),
        ("health_require_token", ["/healthz", "/readyz"], ["/metrics"]),
    ],
)
async def test_require_token_settings_close_their_paths_only(
    sim: SimulatorThread, setting: str, closed: list[str], still_open: list[str]
) -> None:
    async with running_daemon(fleet_config(sim, api={setting: True})) as d:
        anonymous = {p: await call(d.url, "GET", p, token=None) for p in closed + still_open}
        with_token = {p: await call(d.url, "GET", p, ACME_TOKEN) for p in closed}

    for path in closed:
        assert_problem(anonymous[path], 401)
        assert with_token[path].status == 200
    for path in still_open:
        assert anonymous[path].status == 200


# -- routing errors -------------------------------------------------------------------------


async def test_unknown_path_is_a_404_problem(sim: SimulatorThread) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        answer = await call(d.url, "GET", "/api/v1/nothing-here")

    assert "no such path" in assert_problem(answer, 404)["detail"]


async def test_wrong_method_is_a_405_problem_with_allow(sim: SimulatorThread) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        answer = await call(d.url, "PATCH", "/api/v1/integrations/bridge-acme1")

    assert "GET" in assert_problem(answer, 405)["detail"]
    assert "GET" in answer.headers["Allow"]


async def test_request_line_beyond_the_parser_limit_is_still_a_4xx(sim: SimulatorThread) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        answer = await call(d.url, "GET", "/api/v1/integrations/" + "x" * 20_000)

    assert 400 <= answer.status < 500


# -- the status page shell ------------------------------------------------------------------


async def test_status_page_shell_is_public_and_carries_no_data(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    sim_client.set_scenario("imessage_bridge", "auth_fail")
    async with running_daemon(fleet_config(sim)) as d:
        await d.runner.run_many(list(FLEET))
        page = await call(d.url, "GET", "/", token=None)

    assert page.status == 200 and page.content_type == "text/html"
    assert "Run health check" in page.text
    assert not [i for i in [*FLEET, "auth_invalid", ACME] if i in page.text]
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("name", "content_type"), [("status.js", "text/javascript"), ("status.css", "text/css")]
)
async def test_status_page_assets_are_served_from_the_package(
    sim: SimulatorThread, name: str, content_type: str
) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        page = await call(d.url, "GET", "/", token=None)
        asset = await call(d.url, "GET", f"/static/{name}", token=None)

    assert f"/static/{name}?v=" in page.text
    assert asset.status == 200 and asset.content_type == content_type
    # Nothing from a CDN: the only address allowed is SVG's namespace name, which is an
    # identifier that is never fetched.
    text = asset.text.replace('"http://www.w3.org/2000/svg"', "")
    assert "http://" not in text and "https://" not in text


async def test_unknown_asset_is_a_404_problem(sim: SimulatorThread) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        assert_problem(await call(d.url, "GET", "/static/..%2Fapp.py", token=None), 404)


# -- the OpenAPI document -------------------------------------------------------------------


async def test_openapi_describes_every_route_and_only_those(sim: SimulatorThread) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        served = (await call(d.url, "GET", "/openapi.json", token=None)).json
        routes = {
            (r.method.lower(), r.resource.canonical)
            for r in d.app.router.routes()
            if r.method != "HEAD" and r.resource is not None
        }

    documented = {(m, p) for p, ops in served["paths"].items() for m in ops}
    assert documented == routes


@pytest.mark.parametrize("require", [False, True])
def test_openapi_security_of_health_and_metrics_follows_the_settings(require: bool) -> None:
    doc = openapi_document(health_require_token=require, metrics_require_token=require)

    for path in ("/healthz", "/readyz", "/metrics"):
        assert bool(doc["paths"][path]["get"]["security"]) is require
        assert ("401" in doc["paths"][path]["get"]["responses"]) is require


def refs(node: Any) -> set[str]:
    """Every `$ref` anywhere in a JSON document."""
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(refs(v) for v in node))
    return set()


def test_openapi_schemas_are_the_body_models_and_every_reference_resolves() -> None:
    doc = openapi_document()
    components = doc["components"]["schemas"]

    for model in (*schemas.RESPONSES, *schemas.REQUESTS):
        assert model.__name__ in components
    assert {r.removeprefix("#/components/schemas/") for r in refs(doc)} <= set(components)
    detail = doc["paths"]["/api/v1/integrations/{id}"]["get"]["responses"]["200"]
    assert detail["content"]["application/json"]["schema"]["$ref"].endswith("IntegrationDetail")


def test_openapi_names_the_providers_from_the_probe_registry() -> None:
    [provider, _] = openapi_document()["paths"]["/api/v1/errors/{provider}/{code}"]["get"][
        "parameters"
    ]

    assert all(name in provider["description"] for name in probes())

"""The SendGrid and Google simulators answer what the providers' published descriptions say.

Every checked answer is validated against the response schema of its path in
`shared/specs/sendgrid/*.json` (OpenAPI 3) or `gmail.v1.discovery.json`: each field
the fake sends must exist in the schema with the right type, required fields must be
there, and enum values must be ones the spec lists. So the fakes cannot drift from the
real APIs without a test failing.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import aiohttp
import pytest

from healthd import probing
from healthd.sim.app import Simulator
from healthd.sim.base import ProviderSim
from healthd.sim.google import GoogleSim
from healthd.sim.sendgrid import SendGridSim
from healthd.sim.sendgrid_events import EVENTS_PATH
from probes.google import GoogleOptions, GoogleProbe
from probes.sendgrid import SendGridOptions, SendGridProbe
from tests._shared import shared_file
from tests.email_support import by_code, make_ctx, make_integration, serve

KEY = "SG.sim-test-key"
CLIENT = "1234-sim.apps.googleusercontent.com"
# The live API sends `"help": null` in error bodies (PROVIDERS.md B0) where the OpenAPI
# file types `help` as a non-nullable object.
LIVE_NULLS = frozenset({"help"})


def _load(name: str) -> dict[str, Any]:
    return json.loads(shared_file("specs", *name.split("/")).read_text("utf-8"))


Resolver = Callable[[str], dict[str, Any]]


def conformance(value: Any, schema: dict[str, Any], resolve: Resolver, at: str = "$") -> list[str]:
    """Problems with `value` against `schema` (the subset of JSON Schema the specs use)."""
    if "$ref" in schema:
        return conformance(value, resolve(schema["$ref"]), resolve, at)
    if value is None:
        ok = schema.get("nullable") or at.rsplit(".", 1)[-1] in LIVE_NULLS
        return [] if ok else [f"{at}: null where the spec does not allow it"]
    problems: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{at}: {value!r} not in enum {schema['enum']}")
    kind = schema.get("type")
    checks: dict[str, Callable[[Any], bool]] = {
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "array": lambda v: isinstance(v, list),
        "object": lambda v: isinstance(v, dict),
    }
    if kind in checks and not checks[kind](value):
        return [*problems, f"{at}: {type(value).__name__} where the spec says {kind}"]
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += conformance(item, schema["items"], resolve, f"{at}[{i}]")
    if isinstance(value, dict):
        properties = schema.get("properties")
        for name in schema.get("required", []):
            if name not in value:
                problems.append(f"{at}: required field {name!r} missing")
        for name, item in value.items():
            if properties is None:
                continue
            if name not in properties:
                problems.append(f"{at}: field {name!r} is not in the spec")
            else:
                problems += conformance(item, properties[name], resolve, f"{at}.{name}")
    return problems


def openapi_resolver(spec: dict[str, Any]) -> Resolver:
    def resolve(ref: str) -> dict[str, Any]:
        node: Any = spec
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return dict(node)

    return resolve


def openapi_schema(spec: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    response = spec["paths"][path][method]["responses"][str(status)]
    if "$ref" in response:
        response = openapi_resolver(spec)(response["$ref"])
    return dict(response["content"]["application/json"]["schema"])


SENDGRID_FILES = {
    "/v3/scopes": "tsg_scopes_v3.json",
    "/v3/user/credits": "tsg_user_v3.json",
    "/v3/verified_senders": "tsg_verified_senders_v3.json",
    "/v3/whitelabel/domains": "tsg_domain_authentication_v3.json",
    "/v3/stats": "tsg_stats_v3.json",
    "/v3/mail/send": "tsg_mail_v3.json",
    "/v3/user/webhooks/event/settings/signed/{id}": "tsg_webhooks_v3.json",
}
GMAIL = "google/gmail.v1.discovery.json"


@dataclass
class Served:
    sim: ProviderSim
    base: str
    session: aiohttp.ClientSession


@pytest.fixture
async def sendgrid() -> AsyncIterator[Served]:
    sim = SendGridSim()
    async with serve(sim) as base, aiohttp.ClientSession() as session:
        yield Served(sim, base, session)


@pytest.fixture
async def google() -> AsyncIterator[Served]:
    sim = GoogleSim()
    async with serve(sim) as base, aiohttp.ClientSession() as session:
        yield Served(sim, base, session)


async def sg_get(
    served: Served, path: str, scenario: str, **query: str
) -> tuple[int, Any, dict[str, str]]:
    served.sim.set_scenario(scenario, KEY)
    headers = {"Authorization": f"Bearer {KEY}"}
    async with served.session.get(served.base + path, headers=headers, params=query) as resp:
        return resp.status, await resp.json(), dict(resp.headers)


STATS_QUERY = {"start_date": "2026-03-01", "end_date": "2026-03-03", "aggregated_by": "day"}


def test_every_sendgrid_route_is_a_published_path() -> None:
    for route in SendGridSim().routes():
        if route.path == EVENTS_PATH:
            continue  # the simulator's own control route: it posts the Event Webhook
        spec = _load(f"sendgrid/{SENDGRID_FILES[route.path]}")
        assert route.method.lower() in spec["paths"][route.path], route.path


@pytest.mark.parametrize(
    ("path", "scenario", "query"),
    [
        ("/v3/scopes", "ok", {}),
        ("/v3/scopes", "no_mail_send_scope", {}),
        ("/v3/verified_senders", "ok", {}),
        ("/v3/verified_senders", "sender_unverified", {}),
        ("/v3/whitelabel/domains", "ok", {"domain": "example.com"}),
        ("/v3/whitelabel/domains", "domain_invalid_dns", {}),
        ("/v3/stats", "ok", STATS_QUERY),
        ("/v3/stats", "blocks_spike", STATS_QUERY),
        ("/v3/user/credits", "ok", {}),
        ("/v3/user/credits", "credits_exhausted", {}),
        ("/v3/verified_senders", "no_senders", {}),
        ("/v3/whitelabel/domains", "no_senders", {}),
    ],
)
async def test_sendgrid_success_bodies_match_the_spec(
    sendgrid: Served, path: str, scenario: str, query: dict[str, str]
) -> None:
    status, body, _ = await sg_get(sendgrid, path, scenario, **query)
    assert status == 200
    spec = _load(f"sendgrid/{SENDGRID_FILES[path]}")
    schema = openapi_schema(spec, path, "get", 200)
    assert conformance(body, schema, openapi_resolver(spec)) == []


async def test_sendgrid_stats_has_every_published_metric_for_each_day(sendgrid: Served) -> None:
    _, body, _ = await sg_get(sendgrid, "/v3/stats", "ok", **STATS_QUERY)
    spec = _load("sendgrid/tsg_stats_v3.json")
    published = set(spec["components"]["schemas"]["StatsAdvancedGlobalStats"]["properties"])
    assert [day["date"] for day in body] == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert all(set(day["stats"][0]["metrics"]) == published for day in body)


@pytest.mark.parametrize(
    ("scenario", "status", "message", "own_schema"),
    [
        ("missing_key", 401, "authorization required", True),
        # The revoked-key body comes from live captures (it adds `help`), not the 401
        # example, so it is held to the general ErrorResponse schema.
        (
            "revoked_key",
            401,
            "The provided authorization grant is invalid, expired, or revoked",
            False,
        ),  # noqa: E501
        ("server_error", 500, "internal server error", True),
        ("rate_limited", 429, "too many requests", False),
    ],
)
async def test_sendgrid_errors_have_the_published_shape(
    sendgrid: Served, scenario: str, status: int, message: str, own_schema: bool
) -> None:
    got, body, _ = await sg_get(sendgrid, "/v3/scopes", scenario)
    assert got == status
    assert body["errors"][0]["message"] == message
    spec = _load("sendgrid/tsg_scopes_v3.json")
    schema = (
        openapi_schema(spec, "/v3/scopes", "get", status)
        if own_schema
        else spec["components"]["schemas"]["ErrorResponse"]
    )
    assert conformance(body, schema, openapi_resolver(spec)) == []


async def test_sendgrid_unverified_sender_send_is_the_real_403(sendgrid: Served) -> None:
    sendgrid.sim.set_scenario("sender_unverified", KEY)
    headers = {"Authorization": f"Bearer {KEY}"}
    url = sendgrid.base + "/v3/mail/send"
    async with sendgrid.session.post(url, headers=headers, json={"from": {}}) as resp:
        status, body = resp.status, await resp.json()
    assert status == 403
    assert body["errors"][0]["field"] == "from"
    assert "does not match a verified Sender Identity" in body["errors"][0]["message"]
    spec = _load("sendgrid/tsg_mail_v3.json")
    schema = openapi_schema(spec, "/v3/mail/send", "post", 403)
    assert conformance(body, schema, openapi_resolver(spec)) == []


@pytest.mark.parametrize("sandbox", [False, True])
async def test_sendgrid_mail_send_accepts_with_202_or_200_in_sandbox(
    sendgrid: Served, sandbox: bool
) -> None:
    payload = {"mail_settings": {"sandbox_mode": {"enable": sandbox}}}
    headers = {"Authorization": f"Bearer {KEY}"}
    url = sendgrid.base + "/v3/mail/send"
    async with sendgrid.session.post(url, headers=headers, json=payload) as resp:
        assert resp.status == (200 if sandbox else 202)


async def test_sendgrid_signed_webhook_key_matches_the_spec(sendgrid: Served) -> None:
    path = "/v3/user/webhooks/event/settings/signed/{id}"
    status, body, _ = await sg_get(sendgrid, path.format(id="wh1"), "ok")
    assert status == 200
    assert body["id"] == "wh1"
    spec = _load(f"sendgrid/{SENDGRID_FILES[path]}")
    schema = openapi_schema(spec, path, "get", 200)
    assert conformance(body, schema, openapi_resolver(spec)) == []


async def test_sendgrid_accepted_mail_carries_an_x_message_id(sendgrid: Served) -> None:
    payload = {"personalizations": [{"to": [{"email": "a@example.com"}]}]}
    headers = {"Authorization": f"Bearer {KEY}"}
    url = sendgrid.base + "/v3/mail/send"
    async with sendgrid.session.post(url, headers=headers, json=payload) as resp:
        assert resp.status == 202
        assert resp.headers["X-Message-Id"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"target": KEY, "url": "http://127.0.0.1:9/", "outcomes": ["opened"]}, "outcomes"),
        ({"target": KEY, "url": "http://127.0.0.1:9/", "late": "deferred"}, "late"),
        ({"target": KEY, "url": "http://127.0.0.1:9/", "forged": -1}, "forged"),
        ({"url": "http://127.0.0.1:9/"}, "target"),
    ],
)
async def test_sendgrid_bad_events_request_names_the_field(
    sendgrid: Served, body: dict[str, Any], named: str
) -> None:
    async with sendgrid.session.post(sendgrid.base + EVENTS_PATH, json=body) as resp:
        assert resp.status == 400
        assert named in (await resp.json())["error"]


@pytest.mark.parametrize("scenario", sorted(SendGridSim.scenarios))
@pytest.mark.parametrize("path", ["/v3/scopes", "/v3/verified_senders", "/v3/stats"])
async def test_sendgrid_every_answer_carries_rate_limit_headers(
    sendgrid: Served, scenario: str, path: str
) -> None:
    _, _, headers = await sg_get(sendgrid, path, scenario, **STATS_QUERY)
    limit, remaining = int(headers["X-RateLimit-Limit"]), int(headers["X-RateLimit-Remaining"])
    assert 0 <= remaining < limit
    assert int(headers["X-RateLimit-Reset"]) > 1_700_000_000


async def test_sendgrid_remaining_calls_count_down_per_key(sendgrid: Served) -> None:
    seen = [int((await sg_get(sendgrid, "/v3/scopes", "ok"))[2]["X-RateLimit-Remaining"])]
    seen.append(int((await sg_get(sendgrid, "/v3/scopes", "ok"))[2]["X-RateLimit-Remaining"]))
    assert seen[1] in (seen[0] - 1, 599)  # 599: a new one-minute window began in between


async def test_sendgrid_request_without_a_key_is_authorization_required(sendgrid: Served) -> None:
    async with sendgrid.session.get(sendgrid.base + "/v3/scopes") as resp:
        assert resp.status == 401
        assert (await resp.json())["errors"][0]["message"] == "authorization required"


# --- Google -----------------------------------------------------------------------------


def discovery_resolver(doc: dict[str, Any]) -> Resolver:
    return lambda ref: dict(doc["schemas"][ref])


def _discovery_methods(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = list(node.get("methods", {}).values())
    for child in node.get("resources", {}).values():
        found += _discovery_methods(child)
    return found


def test_every_gmail_route_is_a_published_method() -> None:
    doc = _load(GMAIL)
    published = {
        (m["httpMethod"], re.sub(r"\{[^}]+\}", "{}", m["flatPath"]))
        for m in _discovery_methods(doc)
    }
    for route in GoogleSim().routes():
        if route.path.startswith("/gmail/"):
            key = (route.method, re.sub(r"\{[^}]+\}", "{}", route.path.lstrip("/")))
            assert key in published, route.path


async def google_token(served: Served, scenario: str = "ok") -> tuple[int, dict[str, Any]]:
    served.sim.set_scenario(scenario, CLIENT)
    form = {
        "grant_type": "refresh_token",
        "client_id": CLIENT,
        "client_secret": "s",
        "refresh_token": "r",
    }
    async with served.session.post(served.base + "/token", data=form) as resp:
        return resp.status, await resp.json()


async def gmail_get(served: Served, path: str, scenario: str) -> tuple[int, Any]:
    _, token = await google_token(served, scenario)
    headers = {"Authorization": f"Bearer {token.get('access_token', 'none')}"}
    async with served.session.get(served.base + path, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_token_grant_answers_the_oauth_fields(google: Served) -> None:
    status, body = await google_token(google)
    assert status == 200
    assert set(body) == {"access_token", "expires_in", "scope", "token_type"}
    assert body["token_type"] == "Bearer" and isinstance(body["expires_in"], int)


@pytest.mark.parametrize(
    ("scenario", "status", "error", "description"),
    [
        ("invalid_grant", 400, "invalid_grant", "Token has been expired or revoked."),
        ("invalid_client", 401, "invalid_client", "The OAuth client was not found."),
    ],
)
async def test_token_errors_are_oauth_shaped(
    google: Served, scenario: str, status: int, error: str, description: str
) -> None:
    assert await google_token(google, scenario) == (
        status,
        {"error": error, "error_description": description},
    )


@pytest.mark.parametrize(
    ("path", "scenario", "schema"),
    [
        ("/gmail/v1/users/me/profile", "ok", "Profile"),
        ("/gmail/v1/users/me/settings/sendAs/team@example.com", "ok", "SendAs"),
        ("/gmail/v1/users/me/settings/sendAs/team@example.com", "send_as_pending", "SendAs"),
        ("/gmail/v1/users/me/settings/sendAs/sales@example.com", "ok", "SendAs"),
    ],
)
async def test_gmail_bodies_match_the_discovery_schemas(
    google: Served, path: str, scenario: str, schema: str
) -> None:
    status, body = await gmail_get(google, path, scenario)
    assert status == 200
    doc = _load(GMAIL)
    assert conformance(body, doc["schemas"][schema], discovery_resolver(doc)) == []


async def test_pending_alias_uses_the_published_verification_enum(google: Served) -> None:
    path = "/gmail/v1/users/me/settings/sendAs/team@example.com"
    _, body = await gmail_get(google, path, "send_as_pending")
    enum = _load(GMAIL)["schemas"]["SendAs"]["properties"]["verificationStatus"]["enum"]
    assert body["verificationStatus"] == "pending" and "pending" in enum


@pytest.mark.parametrize(
    ("path", "scenario", "status", "grpc", "reason"),
    [
        (
            "/gmail/v1/users/me/profile",
            "insufficient_scope",
            403,
            "PERMISSION_DENIED",
            "insufficientPermissions",
        ),  # noqa: E501
        ("/gmail/v1/users/me/profile", "token_rejected", 401, "UNAUTHENTICATED", "authError"),
        (
            "/gmail/v1/users/me/profile",
            "rate_limited",
            429,
            "RESOURCE_EXHAUSTED",
            "rateLimitExceeded",
        ),  # noqa: E501
        ("/gmail/v1/users/me/profile", "server_error", 503, "UNAVAILABLE", "backendError"),
        (
            "/gmail/v1/users/me/settings/sendAs/x@example.com",
            "send_as_missing",
            404,
            "NOT_FOUND",
            "notFound",
        ),  # noqa: E501
    ],
)
async def test_gmail_errors_use_the_google_api_envelope(
    google: Served, path: str, scenario: str, status: int, grpc: str, reason: str
) -> None:
    got, body = await gmail_get(google, path, scenario)
    assert got == status
    error = body["error"]
    assert error["code"] == status and error["status"] == grpc
    assert isinstance(error["message"], str) and error["message"]
    assert error["errors"][0]["reason"] == reason
    assert error["errors"][0]["domain"] == "global"


async def test_scope_error_carries_the_error_info_detail(google: Served) -> None:
    _, body = await gmail_get(google, "/gmail/v1/users/me/profile", "insufficient_scope")
    detail = body["error"]["details"][0]
    assert detail["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert detail["reason"] == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"


async def test_gmail_refuses_a_token_it_never_issued(google: Served) -> None:
    headers = {"Authorization": "Bearer ya29.forged"}
    url = google.base + "/gmail/v1/users/me/profile"
    async with google.session.get(url, headers=headers) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"]["errors"][0]["reason"] == "authError"


async def test_insufficient_scope_grant_lists_only_gmail_send(google: Served) -> None:
    _, body = await google_token(google, "insufficient_scope")
    assert body["scope"] == "https://www.googleapis.com/auth/gmail.send"


@pytest.mark.parametrize(("name", "cls"), [("sendgrid", SendGridSim), ("google", GoogleSim)])
def test_simulators_are_registered_under_their_own_names(name: str, cls: type) -> None:
    (ep,) = [e for e in entry_points(group="healthd.simulators") if e.name == name]
    assert ep.load() is cls and cls.name == name


@pytest.mark.parametrize(
    ("provider", "scenario", "code"),
    [
        ("sendgrid", "revoked_key", "sendgrid.auth_invalid"),
        ("sendgrid", "ok", "sendgrid.key_ok"),
        ("google", "invalid_grant", "google.auth_invalid"),
        ("google", "send_as_pending", "google.send_as_unverified"),
    ],
)
async def test_the_control_api_of_the_full_simulator_drives_the_email_probes(
    provider: str, scenario: str, code: str
) -> None:
    async with Simulator() as sim, aiohttp.ClientSession() as session:
        base = sim.http_url
        control = {"scenario": scenario, "target": "*", "params": {}}
        async with session.post(f"{base}/_sim/{provider}/scenario", json=control) as resp:
            assert resp.status == 200, await resp.text()
        page = f"{base}/status/sendgrid/api/v2/summary.json"
        if provider == "sendgrid":
            options: Any = SendGridOptions(from_email="sales@example.com", statuspage_url=page)
            creds = {"api_key": "SG.k"}
            probe: Any = SendGridProbe()
        else:
            options = GoogleOptions(token_url=f"{base}/token", send_as="team@example.com")
            creds = {"client_id": "cid", "client_secret": "cs", "refresh_token": "rt"}
            probe = GoogleProbe()
        integration = make_integration(provider, base, creds, options)
        async with asyncio.timeout(10):
            result = await probing.check(probe, integration, make_ctx(session))
    assert by_code(result, code)

"""The Twilio simulator answers as Twilio's published API descriptions say, so it cannot drift.

Every served endpoint's body is checked against the 200 response schema of that path and
operation in `shared/specs/twilio/` (fields exist, types and enums match, no extra keys);
envelopes are checked the way the twilio SDK reads them; errors have the classic shape.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from twilio.base.page import Page
from twilio.rest import Client

from healthd.clock import SystemClock
from healthd.interfaces import ProbeContext
from healthd.sim.twilio import DEFAULT_TOKEN, TOLLFREE_NUMBER, TwilioSim, service_sid, sid
from probes._twilio_http import SessionHttpClient
from tests._shared import shared_file

ACCOUNT = "AC" + "fedcba9876543210" * 2
MG = service_sid(ACCOUNT)
BN = sid("BN", ACCOUNT, "brand")


def _load(name: str) -> dict[str, Any]:
    path = shared_file("specs", "twilio", name)
    data: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return data


@pytest.fixture(scope="module")
def specs() -> dict[str, dict[str, Any]]:
    return {"2010": _load("twilio_api_v2010.json"), "v1": _load("twilio_messaging_v1.json")}


@dataclass
class Served:
    sim: TwilioSim
    base: str
    session: aiohttp.ClientSession

    async def get(
        self, path: str, token: str = DEFAULT_TOKEN, **query: str
    ) -> tuple[int, dict[str, Any]]:
        url = path if path.startswith("http") else self.base + path
        headers = {"Authorization": aiohttp.encode_basic_auth(ACCOUNT, token)}
        async with asyncio.timeout(10):
            async with self.session.get(url, params=query or None, headers=headers) as resp:
                return resp.status, await resp.json()


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    sim = TwilioSim()
    app = web.Application()
    app.add_routes(sim.routes())
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield Served(sim, str(server.make_url("")).rstrip("/"), session)
    await server.close()


# -- a small OpenAPI 3.0 response checker


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = spec
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def problems(spec: dict[str, Any], schema: dict[str, Any], value: Any, at: str) -> list[str]:
    schema = _resolve(spec, schema)
    if value is None:
        return [] if schema.get("nullable") or "type" not in schema else [f"{at}: null"]
    kind = schema.get("type")
    if kind in _TYPES and (
        not isinstance(value, _TYPES[kind]) or (kind == "integer" and isinstance(value, bool))
    ):
        return [f"{at}: {type(value).__name__} where the spec says {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{at}: {value!r} is not in the spec's enum {schema['enum']}"]
    found: list[str] = []
    if kind == "array" and "items" in schema:
        for i, item in enumerate(value):
            found += problems(spec, schema["items"], item, f"{at}[{i}]")
    if isinstance(value, dict) and "properties" in schema:
        props = schema["properties"]
        for key, item in value.items():
            if key not in props:
                found.append(f"{at}.{key}: not in the spec")
            else:
                found += problems(spec, props[key], item, f"{at}.{key}")
    return found


def response_schema(spec: dict[str, Any], path: str) -> dict[str, Any]:
    operation = spec["paths"][path]["get"]
    schema: dict[str, Any] = operation["responses"]["200"]["content"]["application/json"]["schema"]
    return schema


ENDPOINTS = [
    ("2010", "/2010-04-01/Accounts/{Sid}.json", f"/2010-04-01/Accounts/{ACCOUNT}.json"),
    (
        "2010",
        "/2010-04-01/Accounts/{AccountSid}/Balance.json",
        f"/2010-04-01/Accounts/{ACCOUNT}/Balance.json",
    ),
    (
        "2010",
        "/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json",
        f"/2010-04-01/Accounts/{ACCOUNT}/IncomingPhoneNumbers.json",
    ),
    (
        "2010",
        "/2010-04-01/Accounts/{AccountSid}/Messages.json",
        f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json",
    ),
    ("v1", "/v1/Services", "/v1/Services"),
    ("v1", "/v1/Services/{Sid}", f"/v1/Services/{MG}"),
    ("v1", "/v1/Services/{ServiceSid}/PhoneNumbers", f"/v1/Services/{MG}/PhoneNumbers"),
    (
        "v1",
        "/v1/Services/{MessagingServiceSid}/Compliance/Usa2p",
        f"/v1/Services/{MG}/Compliance/Usa2p",
    ),
    ("v1", "/v1/a2p/BrandRegistrations/{Sid}", f"/v1/a2p/BrandRegistrations/{BN}"),
    ("v1", "/v1/Tollfree/Verifications", "/v1/Tollfree/Verifications"),
]

SPEC_SCENARIOS = [
    "ok",
    "suspended",
    "closed",
    "number_without_sms",
    "campaign_suspended",
    "campaign_pending",
    "no_campaign",
    "empty_pool",
    "brand_failed",
    "tollfree_unverified",
    "filtering_spike",
    "optout_trickle",
]


@pytest.mark.parametrize("scenario", SPEC_SCENARIOS)
@pytest.mark.parametrize(("host", "spec_path", "path"), ENDPOINTS, ids=[e[1] for e in ENDPOINTS])
async def test_answer_matches_the_published_schema(
    served: Served,
    specs: dict[str, dict[str, Any]],
    scenario: str,
    host: str,
    spec_path: str,
    path: str,
) -> None:
    served.sim.set_scenario(scenario, ACCOUNT)
    status, body = await served.get(path)
    assert status == 200
    spec = specs[host]
    assert problems(spec, response_schema(spec, spec_path), body, "body") == []


def test_the_schema_checker_rejects_drift(specs: dict[str, dict[str, Any]]) -> None:
    spec = specs["2010"]
    schema = response_schema(spec, "/2010-04-01/Accounts/{Sid}.json")
    assert problems(spec, schema, {"status": "frozen"}, "b") != []
    assert problems(spec, schema, {"sid": 5}, "b") != []
    assert problems(spec, schema, {"made_up_field": 1}, "b") != []
    listing = response_schema(spec, "/2010-04-01/Accounts/{AccountSid}/Messages.json")
    assert problems(spec, listing, {"messages": [{"status": "lost"}]}, "b") != []
    assert problems(spec, listing, {"messages": [{"made_up_field": 1}]}, "b") != []


async def test_2010_lists_have_exactly_one_record_key_for_the_sdk(served: Served) -> None:
    for name, key in (("IncomingPhoneNumbers", "incoming_phone_numbers"), ("Messages", "messages")):
        _, body = await served.get(f"/2010-04-01/Accounts/{ACCOUNT}/{name}.json")
        assert set(body) - Page.META_KEYS == {key}


async def test_v1_lists_name_their_array_in_meta_key(served: Served) -> None:
    for path, key in (
        ("/v1/Services", "services"),
        (f"/v1/Services/{MG}/PhoneNumbers", "phone_numbers"),
        (f"/v1/Services/{MG}/Compliance/Usa2p", "compliance"),
        ("/v1/Tollfree/Verifications", "verifications"),
    ):
        _, body = await served.get(path)
        assert body["meta"]["key"] == key
        assert isinstance(body[key], list)


async def test_messages_page_by_page_token_without_gaps(served: Served) -> None:
    served.sim.set_scenario("ok", ACCOUNT, {"count": 20})
    _, body = await served.get(f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json", PageSize="7")
    sids = [m["sid"] for m in body["messages"]]
    pages = 1
    while body["next_page_uri"]:
        assert "PageToken=" in body["next_page_uri"]
        _, body = await served.get(body["next_page_uri"])
        sids += [m["sid"] for m in body["messages"]]
        pages += 1
    assert pages == 3
    assert len(sids) == len(set(sids)) == 20


async def test_v1_next_page_url_is_an_absolute_loopback_url(served: Served) -> None:
    _, body = await served.get(f"/v1/Services/{MG}/PhoneNumbers", PageSize="1")
    next_url = body["meta"]["next_page_url"]
    assert next_url.startswith(served.base + "/v1/Services/")
    _, second = await served.get(next_url)
    assert second["phone_numbers"][0]["phone_number"] == TOLLFREE_NUMBER
    assert second["meta"]["next_page_url"] is None


async def test_messages_filter_on_date_sent_as_date(served: Served) -> None:
    served.sim.set_scenario("ok", ACCOUNT, {"count": 10})
    path = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    _, body = await served.get(path, **{"DateSent>": yesterday})
    assert len(body["messages"]) == 10
    _, body = await served.get(path, **{"DateSent>": tomorrow})
    assert body["messages"] == []


async def test_messages_filter_on_date_sent_as_the_sdk_sends_it(served: Served) -> None:
    served.sim.set_scenario("ok", ACCOUNT, {"count": 60, "spacing": 60})
    cutoff = (datetime.now(UTC) - timedelta(minutes=10, seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    _, body = await served.get(
        f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json", **{"DateSent>": cutoff}
    )
    assert len(body["messages"]) == 10


async def test_a_malformed_date_filter_is_a_classic_400(served: Served) -> None:
    got, body = await served.get(
        f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json", **{"DateSent>": "last tuesday"}
    )
    assert (got, body["status"]) == (400, 400)


async def test_the_sdk_pages_through_both_envelopes(served: Served) -> None:
    served.sim.set_scenario("ok", ACCOUNT, {"count": 20})
    loop = asyncio.get_running_loop()
    ctx = ProbeContext(session=served.session, clock=SystemClock(), catalog=None, timeout=10)  # type: ignore[arg-type]
    client = Client(
        ACCOUNT,
        DEFAULT_TOKEN,
        http_client=SessionHttpClient(ctx, loop.time() + 10),
        environment={"HEALTHD_TEST": "1"},
    )
    client.api.base_url = served.base
    client.messaging.base_url = served.base
    messages = await client.api.v2010.accounts(ACCOUNT).messages.list_async(page_size=6)
    assert len(messages) == 20
    assert all(m.date_sent is not None and m.status == "delivered" for m in messages)
    numbers = await client.messaging.v1.services(MG).phone_numbers.list_async(page_size=1)
    assert [n.capabilities for n in numbers] == [["Voice", "SMS", "MMS"]] * 2


ERROR_CASES = [
    ("ok", "wrong-token", 401, 20003),
    ("revoked_token", DEFAULT_TOKEN, 401, 20003),
    ("server_error", DEFAULT_TOKEN, 500, 20500),
    ("rate_limited", DEFAULT_TOKEN, 429, 20429),
]


@pytest.mark.parametrize(("scenario", "token", "status", "code"), ERROR_CASES)
@pytest.mark.parametrize("path", [e[2] for e in ENDPOINTS])
async def test_errors_have_the_classic_body(
    served: Served, scenario: str, token: str, status: int, code: int, path: str
) -> None:
    served.sim.set_scenario(scenario, ACCOUNT)
    got, body = await served.get(path, token=token)
    assert got == status
    assert body == {
        "code": code,
        "message": body["message"],
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    assert isinstance(body["message"], str) and body["message"]


async def test_an_unknown_service_is_a_classic_404(served: Served) -> None:
    got, body = await served.get("/v1/Services/MG" + "0" * 32)
    assert (got, body["code"], body["status"]) == (404, 20404, 404)


async def test_a_target_can_have_its_own_token(served: Served) -> None:
    served.sim.set_scenario("ok", ACCOUNT, {"auth_token": "per-target-token"})
    assert (await served.get(f"/2010-04-01/Accounts/{ACCOUNT}.json"))[0] == 401
    ok, body = await served.get(f"/2010-04-01/Accounts/{ACCOUNT}.json", token="per-target-token")
    assert ok == 200 and body["status"] == "active"


@pytest.mark.parametrize(
    ("scenario", "field", "value"),
    [("suspended", "status", "suspended"), ("closed", "status", "closed")],
)
async def test_account_status_follows_the_scenario(
    served: Served, scenario: str, field: str, value: str
) -> None:
    served.sim.set_scenario(scenario, ACCOUNT)
    _, body = await served.get(f"/2010-04-01/Accounts/{ACCOUNT}.json")
    assert body[field] == value


async def test_filtering_spike_marks_the_share_undelivered_with_30007(served: Served) -> None:
    served.sim.set_scenario("filtering_spike", ACCOUNT, {"count": 40, "rate": 0.25})
    _, body = await served.get(f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json", PageSize="100")
    bad = [m for m in body["messages"] if m["status"] == "undelivered"]
    assert len(bad) == 10
    assert {m["error_code"] for m in bad} == {30007}


async def test_extra_services_come_first_with_empty_pools_and_no_campaign(
    served: Served,
) -> None:
    served.sim.set_scenario("ok", ACCOUNT, {"extra_services": 3})
    _, body = await served.get("/v1/Services", PageSize="2")
    assert len(body["services"]) == 2 and body["meta"]["next_page_url"] is not None
    _, everything = await served.get("/v1/Services")
    sids = [s["sid"] for s in everything["services"]]
    assert sids[-1] == MG and len(sids) == 4
    _, pool = await served.get(f"/v1/Services/{sids[0]}/PhoneNumbers")
    _, campaigns = await served.get(f"/v1/Services/{sids[0]}/Compliance/Usa2p")
    assert pool["phone_numbers"] == [] and campaigns["compliance"] == []


async def test_no_campaign_leaves_the_pool_but_lists_no_campaign(served: Served) -> None:
    served.sim.set_scenario("no_campaign", ACCOUNT)
    _, pool = await served.get(f"/v1/Services/{MG}/PhoneNumbers")
    _, campaigns = await served.get(f"/v1/Services/{MG}/Compliance/Usa2p")
    assert pool["phone_numbers"] and campaigns["compliance"] == []

from __future__ import annotations

import aiohttp
import pagerduty
import pytest

from healthd.sim.tls import client_context

from .conftest import ROUTING_KEY


def trigger(**overrides):
    body = {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": "bridge_unreachable/dc1",
        "payload": {
            "summary": "Bridge dc1 unreachable",
            "source": "healthd",
            "severity": "critical",
        },
    }
    body.update(overrides)
    return body


def with_payload(**overrides):
    """A trigger whose payload has `overrides` applied; a None value deletes the field."""
    body = trigger()
    payload = {**body["payload"], **overrides}
    body["payload"] = {k: v for k, v in payload.items() if v is not None}
    return body


def without(body, field):
    return {k: v for k, v in body.items() if k != field}


@pytest.fixture
def pd(sim):
    return sim.provider("pagerduty")


async def send(sim, http, body, path="/v2/enqueue"):
    async with http.post(f"{sim.http_url}{path}", json=body) as response:
        return response.status, await response.json()


REJECTED = [
    ("missing routing_key", without(trigger(), "routing_key"), "'routing_key' is missing or blank"),
    ("short routing_key", trigger(routing_key="abc"), "Length of 'routing_key' is incorrect"),
    ("long routing_key", trigger(routing_key=ROUTING_KEY + "x"), "Length of 'routing_key'"),
    ("missing event_action", without(trigger(), "event_action"), "'event_action' is missing"),
    ("bad event_action", trigger(event_action="escalate"), "'event_action' is invalid"),
    ("trigger without payload", without(trigger(), "payload"), "'payload' is missing or blank"),
    ("payload not an object", trigger(payload="down"), "'payload' is invalid"),
    ("missing summary", with_payload(summary=None), "'payload.summary' is missing or blank"),
    ("blank summary", with_payload(summary="  "), "'payload.summary' is missing or blank"),
    ("summary over 1024", with_payload(summary="x" * 1025), "'payload.summary' is too long"),
    ("missing source", with_payload(source=None), "'payload.source' is missing or blank"),
    ("missing severity", with_payload(severity=None), "'payload.severity' is missing"),
    ("bad severity", with_payload(severity="fatal"), "'payload.severity' is invalid"),
    ("resolve without dedup_key", without(trigger(event_action="resolve"), "dedup_key"),
     "'dedup_key' is missing or blank"),
    ("acknowledge without dedup_key", without(trigger(event_action="acknowledge"), "dedup_key"),
     "'dedup_key' is missing or blank"),
    ("dedup_key over 255", trigger(dedup_key="k" * 256), "'dedup_key' is too long"),
    ("link without href", trigger(links=[{"text": "x"}]), "'links[0].href' is missing"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "error"), [c[1:] for c in REJECTED], ids=[c[0] for c in REJECTED])
async def test_invalid_event_is_400_naming_the_problem(sim, http, body, error):
    status, answer = await send(sim, http, body)
    assert status == 400
    assert answer["status"] == "invalid event"
    assert answer["message"] == "Event object is invalid"
    assert any(error in e for e in answer["errors"]), answer["errors"]


async def test_every_problem_is_listed_not_just_the_first(sim, http):
    _, answer = await send(sim, http, trigger(routing_key="abc", payload={"summary": "x"}))
    assert len(answer["errors"]) == 3  # routing_key length, source, severity


async def test_summary_of_exactly_1024_characters_is_accepted(sim, http):
    status, _ = await send(sim, http, with_payload(summary="x" * 1024))
    assert status == 202


async def test_body_that_is_not_json_is_400_unrecognized_object(sim, http):
    async with http.post(f"{sim.http_url}/v2/enqueue", data=b"{oops") as response:
        assert response.status == 400
        assert await response.json() == {
            "status": "Unrecognized object",
            "message": "Event object format is unrecognized",
            "errors": ["JSON parse error"],
        }


async def test_accepted_trigger_is_202_with_its_dedup_key(sim, http):
    status, answer = await send(sim, http, trigger())
    assert (status, answer) == (
        202,
        {"status": "success", "message": "Event processed", "dedup_key": "bridge_unreachable/dc1"},
    )


async def test_trigger_without_dedup_key_gets_a_generated_one(sim, http):
    _, first = await send(sim, http, without(trigger(), "dedup_key"))
    _, second = await send(sim, http, without(trigger(), "dedup_key"))
    assert first["dedup_key"] and second["dedup_key"]
    assert first["dedup_key"] != second["dedup_key"]


async def test_change_event_needs_only_routing_key_and_summary(sim, http):
    body = {"routing_key": ROUTING_KEY, "payload": {"summary": "Deployed healthd 0.1.0"}}
    status, answer = await send(sim, http, body, "/v2/change/enqueue")
    assert status == 202
    assert answer["status"] == "success"


async def test_change_event_without_summary_is_rejected(sim, http):
    body = {"routing_key": ROUTING_KEY, "payload": {}}
    status, answer = await send(sim, http, body, "/v2/change/enqueue")
    assert status == 400
    assert "'payload.summary' is missing or blank" in answer["errors"]


async def test_events_keep_the_body_with_only_the_routing_key_tail(sim, http, pd):
    await send(sim, http, trigger())
    await send(sim, http, trigger(event_action="resolve"))
    assert [e["body"]["event_action"] for e in pd.events] == ["trigger", "resolve"]
    assert pd.events[0]["body"] == {**trigger(), "routing_key": "CDEF"}
    assert ROUTING_KEY not in str(pd.events)


async def test_rejected_events_are_counted_not_kept(sim, http, pd):
    await send(sim, http, trigger(routing_key="abc"))
    assert pd.events == []
    assert pd.describe()["rejected"] == 1


async def test_rate_limited_is_429_and_counted(sim, http, pd):
    pd.set_scenario("rate_limited")
    status, _ = await send(sim, http, trigger())
    assert status == 429
    assert pd.describe()["throttled"] == 1
    assert pd.events == []


async def test_rate_limit_applies_only_to_its_routing_key(sim, http, pd):
    pd.set_scenario("rate_limited", target=ROUTING_KEY)
    other = "0" * 32
    assert (await send(sim, http, trigger()))[0] == 429
    assert (await send(sim, http, trigger(routing_key=other)))[0] == 202


async def test_server_error_is_500_with_the_error_envelope(sim, http, pd):
    pd.set_scenario("server_error")
    status, answer = await send(sim, http, trigger())
    assert status == 500
    assert set(answer) >= {"status", "message"}
    assert pd.describe()["server_errors"] == 1


async def test_down_drops_the_connection(sim, http, pd):
    pd.set_scenario("down")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await send(sim, http, trigger())


# The incident model follows PagerDuty's dedup rules (PROVIDERS.md D1).


async def test_trigger_opens_an_incident_and_repeats_only_count(sim, http, pd):
    await send(sim, http, trigger())
    await send(sim, http, trigger())
    [incident] = pd.incidents()
    assert incident["status"] == "triggered"
    assert incident["trigger_count"] == 2
    assert incident["opened_at"] is not None
    assert incident["resolved_at"] is None


async def test_resolve_closes_the_open_incident(sim, http, pd):
    await send(sim, http, trigger())
    await send(sim, http, trigger(event_action="resolve"))
    [incident] = pd.incidents()
    assert (incident["status"], incident["resolve_count"]) == ("resolved", 1)
    assert incident["resolved_at"] is not None


async def test_a_second_resolve_is_counted_on_the_closed_incident(sim, http, pd):
    await send(sim, http, trigger())
    await send(sim, http, trigger(event_action="resolve"))
    await send(sim, http, trigger(event_action="resolve"))
    [incident] = pd.incidents()
    assert incident["resolve_count"] == 2


async def test_resolve_without_an_open_incident_opens_nothing(sim, http, pd):
    status, _ = await send(sim, http, trigger(event_action="resolve"))
    assert status == 202
    assert pd.incidents() == []


async def test_trigger_after_resolve_opens_a_new_incident(sim, http, pd):
    await send(sim, http, trigger())
    await send(sim, http, trigger(event_action="resolve"))
    await send(sim, http, trigger())
    assert [i["status"] for i in pd.incidents()] == ["resolved", "triggered"]


async def test_same_dedup_key_on_another_routing_key_is_another_incident(sim, http, pd):
    await send(sim, http, trigger())
    await send(sim, http, trigger(routing_key="0" * 32, event_action="resolve"))
    [incident] = pd.incidents()
    assert incident["status"] == "triggered"


async def test_acknowledge_marks_the_open_incident(sim, http, pd):
    await send(sim, http, trigger())
    await send(sim, http, trigger(event_action="acknowledge"))
    [incident] = pd.incidents()
    assert (incident["status"], incident["acknowledge_count"]) == ("acknowledged", 1)


def test_control_api_lists_events_and_incidents_and_clears_them(sim_thread, control):
    client = pagerduty.EventsApiV2Client(
        ROUTING_KEY, base_url=sim_thread.https_url, verify=client_context(sim_thread.ca_path)
    )
    with client:
        client.trigger("Bridge dc1 unreachable", "healthd", dedup_key="k1")
    assert [e["dedup_key"] for e in control.pagerduty_events()] == ["k1"]
    assert [i["dedup_key"] for i in control.pagerduty_incidents()] == ["k1"]
    control.clear_pagerduty()
    assert control.pagerduty_events() == []
    assert control.pagerduty_incidents() == []


# The real `pagerduty` client, through the HTTPS listener and the throwaway CA. httpx2
# deprecates `verify=<path>`, so the CA goes in as an SSLContext built from `ca_path`.


@pytest.fixture
def pd_client(sim_thread):
    client = pagerduty.EventsApiV2Client(
        ROUTING_KEY,
        base_url=sim_thread.https_url,
        verify=client_context(sim_thread.ca_path),
        timeout=5,
    )
    # 429 retries forever by default (PROVIDERS.md D2); give up after one retry.
    client.retry[429] = 1
    client.sleep_timer = 0.01
    with client:
        yield client


def test_pagerduty_client_triggers_and_resolves_over_https(pd_client, control):
    key = pd_client.trigger("Bridge dc1 unreachable", "healthd", dedup_key="bridge/dc1")
    assert key == "bridge/dc1"
    assert pd_client.resolve(key) == key
    [incident] = control.pagerduty_incidents()
    assert (incident["trigger_count"], incident["resolve_count"]) == (1, 1)
    assert incident["status"] == "resolved"


def test_pagerduty_client_gets_the_generated_dedup_key(pd_client):
    assert len(pd_client.trigger("Bridge dc1 unreachable", "healthd")) == 32


def test_pagerduty_client_raises_on_a_throttled_routing_key(pd_client, control):
    control.set_scenario("pagerduty", "rate_limited", target=ROUTING_KEY)
    with pytest.raises(pagerduty.HttpError) as err:
        pd_client.trigger("Bridge dc1 unreachable", "healthd")
    assert err.value.response.status_code == 429
    assert control.describe()["providers"]["pagerduty"]["throttled"] == 2


def test_pagerduty_client_error_for_an_event_the_api_rejects(sim_thread):
    client = pagerduty.EventsApiV2Client(
        "short", base_url=sim_thread.https_url, verify=client_context(sim_thread.ca_path), timeout=5
    )
    with client, pytest.raises(pagerduty.HttpError) as err:
        client.trigger("Bridge dc1 unreachable", "healthd")
    assert err.value.response.status_code == 400
    assert "Length of 'routing_key' is incorrect" in err.value.response.text


def test_pagerduty_client_gives_up_when_the_connection_drops(pd_client, control):
    control.set_scenario("pagerduty", "down")
    with pytest.raises(pagerduty.Error):
        pd_client.trigger("Bridge dc1 unreachable", "healthd")
    assert control.pagerduty_events() == []

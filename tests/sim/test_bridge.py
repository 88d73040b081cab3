from __future__ import annotations

import json
import time

import aiohttp
import pytest

from healthd.sim.bridge import DEFAULT_PASSWORD

AUTH = {"password": DEFAULT_PASSWORD}


@pytest.fixture
def bridge(sim):
    return sim.provider("imessage_bridge")


async def get_json(http, url, params=AUTH):
    async with http.get(url, params=params) as response:
        return response.status, await response.json()


async def test_ping_answers_pong_in_the_bluebubbles_envelope(sim, http):
    status, body = await get_json(http, f"{sim.http_url}/api/v1/ping")
    assert (status, body) == (200, {"status": 200, "message": "Ping received!", "data": "pong"})


async def test_a_named_bridge_lives_under_bridges_name(sim, http, bridge):
    bridge.set_scenario("signed_out", target="dc2")
    _, dc1 = await get_json(http, f"{sim.http_url}/bridges/dc1/api/v1/server/info")
    _, dc2 = await get_json(http, f"{sim.http_url}/bridges/dc2/api/v1/server/info")
    assert dc1["data"]["detected_imessage"] is not None
    assert dc2["data"]["detected_imessage"] is None


async def test_server_info_has_every_bluebubbles_metadata_field(sim, http):
    _, body = await get_json(http, f"{sim.http_url}/api/v1/server/info")
    assert set(body["data"]) == {
        "computer_id", "os_version", "server_version", "private_api", "proxy_service",
        "helper_connected", "detected_icloud", "detected_imessage", "macos_time_sync",
        "local_ipv4s", "local_ipv6s",
    }  # fmt: skip
    assert body["data"]["private_api"] is True
    assert body["data"]["helper_connected"] is True


@pytest.mark.parametrize("param", ["password", "guid", "token"])
async def test_each_bluebubbles_auth_parameter_is_accepted(sim, http, param):
    status, _ = await get_json(http, f"{sim.http_url}/api/v1/ping", {param: DEFAULT_PASSWORD})
    assert status == 200


async def test_missing_password_is_401_missing_server_password(sim, http):
    status, body = await get_json(http, f"{sim.http_url}/api/v1/ping", params={})
    assert status == 401
    assert body["error"] == {"type": "Authentication Error", "message": "Missing server password!"}


async def test_wrong_password_is_401_unauthorized(sim, http):
    status, body = await get_json(http, f"{sim.http_url}/api/v1/ping", {"password": "nope"})
    assert status == 401
    assert body["status"] == 401
    assert body["error"] == {"type": "Authentication Error", "message": "Unauthorized"}


async def test_a_scenario_param_changes_the_bridge_password(sim, http, bridge):
    bridge.set_scenario("ok", target="dc1", params={"password": "s3cret"})
    url = f"{sim.http_url}/bridges/dc1/api/v1/ping"
    assert (await get_json(http, url))[0] == 401
    assert (await get_json(http, url, {"password": "s3cret"}))[0] == 200


async def test_auth_fail_rejects_the_right_password(sim, http, bridge):
    bridge.set_scenario("auth_fail")
    status, body = await get_json(http, f"{sim.http_url}/api/v1/ping")
    assert status == 401
    assert body["error"]["type"] == "Authentication Error"


async def test_offline_drops_the_connection_without_an_answer(sim, http, bridge):
    bridge.set_scenario("offline", target="dc1")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await get_json(http, f"{sim.http_url}/bridges/dc1/api/v1/ping")


async def test_helper_disconnected_has_private_api_without_helper(sim, http, bridge):
    bridge.set_scenario("helper_disconnected")
    _, body = await get_json(http, f"{sim.http_url}/api/v1/server/info")
    assert (body["data"]["private_api"], body["data"]["helper_connected"]) == (True, False)


async def test_html_answers_200_with_a_page_instead_of_json(sim, http, bridge):
    bridge.set_scenario("html")
    async with http.get(f"{sim.http_url}/api/v1/ping", params=AUTH) as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        assert (await response.text()).startswith("<!DOCTYPE html>")


async def test_truncated_answers_200_with_json_cut_off(sim, http, bridge):
    bridge.set_scenario("truncated")
    async with http.get(f"{sim.http_url}/api/v1/server/info", params=AUTH) as response:
        assert response.status == 200
        text = await response.text()
    assert text.startswith('{"status": 200')
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


async def test_server_error_is_500_with_the_bluebubbles_error_envelope(sim, http, bridge):
    bridge.set_scenario("server_error")
    status, body = await get_json(http, f"{sim.http_url}/api/v1/ping")
    assert status == 500
    assert body["status"] == 500
    assert body["error"]["type"] == "Server Error"


async def query_messages(sim, http, body=None):
    url = f"{sim.http_url}/api/v1/message/query"
    async with http.post(url, params=AUTH, json=body or {"limit": 100}) as response:
        return response.status, await response.json()


async def test_healthy_bridge_lists_recent_delivered_outgoing_messages(sim, http):
    status, body = await query_messages(sim, http)
    assert status == 200
    assert body["data"]
    now_ms = time.time() * 1000
    for message in body["data"]:
        assert message["isFromMe"] is True
        assert message["error"] == 0
        assert message["isDelivered"] is True
        assert message["dateCreated"] <= message["dateDelivered"] <= now_ms


async def test_backlog_lists_old_undelivered_messages(sim, http, bridge):
    bridge.set_scenario("backlog", params={"undelivered": 4, "age_seconds": 1200})
    _, body = await query_messages(sim, http)
    answered_ms = time.time() * 1000
    stuck = [m for m in body["data"] if not m["isDelivered"]]
    assert len(stuck) == 4
    assert all(m["dateDelivered"] is None for m in stuck)
    assert all(m["dateCreated"] <= answered_ms - 1_200_000 for m in stuck)


async def test_message_query_honours_the_limit(sim, http, bridge):
    bridge.set_scenario("backlog", params={"undelivered": 20})
    _, body = await query_messages(sim, http, {"limit": 5})
    assert len(body["data"]) == 5
    assert body["metadata"]["total"] > 5


async def test_message_query_rejects_a_limit_over_1000(sim, http):
    status, body = await query_messages(sim, http, {"limit": 5000})
    assert status == 400
    assert body["error"]["type"] == "Validation Error"


async def test_scheduled_messages_carry_status_and_time(sim, http):
    _, body = await get_json(http, f"{sim.http_url}/api/v1/message/schedule")
    assert {m["status"] for m in body["data"]} == {"complete", "pending"}
    assert all(isinstance(m["scheduledFor"], int) for m in body["data"])


async def test_backlog_lists_scheduled_messages_in_error(sim, http, bridge):
    bridge.set_scenario("backlog", params={"scheduled_errors": 3})
    _, body = await get_json(http, f"{sim.http_url}/api/v1/message/schedule")
    assert [m["status"] for m in body["data"]].count("error") == 3


async def test_hanging_bridge_is_cut_off_by_the_client_timeout(sim, http, bridge):
    bridge.set_scenario("hanging")
    with pytest.raises(TimeoutError):
        async with http.get(
            f"{sim.http_url}/api/v1/ping", params=AUTH, timeout=aiohttp.ClientTimeout(total=0.2)
        ):
            pass


async def test_describe_counts_each_bridges_server_info_requests_even_refused_ones(
    sim, http, bridge
):
    bridge.set_scenario("auth_fail", target="dc2")
    await get_json(http, f"{sim.http_url}/bridges/dc1/api/v1/server/info")
    await get_json(http, f"{sim.http_url}/bridges/dc1/api/v1/ping")
    status, _ = await get_json(http, f"{sim.http_url}/bridges/dc2/api/v1/server/info")

    assert status == 401
    assert bridge.describe()["info_requests"] == {"dc1": 1, "dc2": 1}

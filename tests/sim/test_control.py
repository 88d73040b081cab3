from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from healthd.sim import SimClientError, Simulator
from healthd.sim.bridge import BridgeSim

from .conftest import ROUTING_KEY


def test_describe_lists_every_loaded_simulator_with_its_scenarios(control):
    providers = control.describe()["providers"]
    assert {"imessage_bridge", "pagerduty"} <= set(providers)
    assert "offline" in providers["imessage_bridge"]["scenarios"]
    assert "hanging" in providers["pagerduty"]["scenarios"]


def test_set_scenario_is_shown_per_target(control):
    control.set_scenario("imessage_bridge", "backlog", target="dc1", undelivered=3)
    active = control.describe()["providers"]["imessage_bridge"]["active"]
    assert active == {"dc1": {"scenario": "backlog", "undelivered": 3}}


def test_unknown_scenario_is_400_naming_the_known_ones(control):
    with pytest.raises(SimClientError, match="no scenario 'melted'.*known: auth_fail") as err:
        control.set_scenario("imessage_bridge", "melted")
    assert err.value.status == 400


def test_unknown_provider_is_404(control):
    with pytest.raises(SimClientError, match="no simulator 'fax'") as err:
        control.set_scenario("fax", "ok")
    assert err.value.status == 404


def _post_raw(url: str, data: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", b"body is not JSON"),
        (b"[]", b"body must be a JSON object"),
        (b'{"scenario": 3}', b"'scenario' must be a non-empty string"),
        (b'{"scenario": "ok", "params": [1]}', b"'params' must be a JSON object"),
    ],
)
def test_bad_scenario_body_is_400_with_a_message(sim_thread, body, message):
    status, answer = _post_raw(f"{sim_thread.http_url}/_sim/pagerduty/scenario", body)
    assert status == 400
    assert message in answer


def test_reset_returns_every_simulator_to_ok_and_clears_pagerduty(control):
    control.set_scenario("pagerduty", "rate_limited", target=ROUTING_KEY)
    control.set_scenario("imessage_bridge", "offline")
    control.reset()
    providers = control.describe()["providers"]
    assert providers["pagerduty"]["active"] == {}
    assert providers["imessage_bridge"]["active"] == {}
    assert control.pagerduty_events() == []


def test_pagerduty_scenario_targets_show_only_the_routing_key_tail(control):
    control.set_scenario("pagerduty", "rate_limited", target=ROUTING_KEY)
    described = str(control.describe())
    assert ROUTING_KEY not in described
    assert "'CDEF': {'scenario': 'rate_limited'}" in described


def test_bridge_password_param_is_masked_in_describe(control):
    control.set_scenario("imessage_bridge", "ok", target="dc1", password="s3cret-bridge")
    described = control.describe()
    assert "s3cret-bridge" not in str(described)
    assert described["providers"]["imessage_bridge"]["active"]["dc1"]["password"] == "***"


async def test_pagerduty_control_routes_are_404_without_the_pagerduty_simulator(http):
    async with Simulator(sims=[BridgeSim()]) as sim:
        async with http.get(f"{sim.http_url}/_sim/pagerduty/events") as response:
            assert response.status == 404
            assert "not loaded" in (await response.json())["error"]

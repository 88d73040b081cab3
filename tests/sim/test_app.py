from __future__ import annotations

import asyncio
from typing import ClassVar

import aiohttp
import pytest
from aiohttp import web

from healthd.sim import RouteConflict, Simulator, SimulatorSetupError, SimulatorThread
from healthd.sim.app import build_app, load_simulators, paths_overlap
from healthd.sim.base import ProviderSim, Scenario
from healthd.sim.bridge import BridgeSim
from healthd.sim.pagerduty import PagerDutySim


async def _ok(request: web.Request) -> web.Response:
    return web.Response()


def make_sim(sim_name: str, *routes: tuple[str, str]) -> ProviderSim:
    class _Sim(ProviderSim):
        name: ClassVar[str] = sim_name
        scenarios: ClassVar[frozenset[str]] = frozenset()

        def routes(self) -> list[web.RouteDef]:
            return [web.route(method, path, _ok) for method, path in routes]

    return _Sim()


def test_entry_points_load_the_bridge_and_pagerduty_simulators():
    names = {type(s) for s in load_simulators()}
    assert {BridgeSim, PagerDutySim} <= names


def test_two_simulators_claiming_the_same_path_are_refused():
    a = make_sim("a", ("GET", "/v1/things"))
    b = make_sim("b", ("GET", "/v1/{kind}"))
    with pytest.raises(RouteConflict, match="'a' and 'b'"):
        build_app([a, b])


def test_same_path_with_different_methods_is_allowed():
    build_app([make_sim("a", ("GET", "/v1/things")), make_sim("b", ("POST", "/v1/things"))])


def test_a_simulator_route_under_the_control_prefix_is_refused():
    with pytest.raises(RouteConflict, match="control prefix"):
        build_app([make_sim("a", ("GET", "/_sim/mine"))])


def test_two_simulators_with_one_name_are_refused():
    with pytest.raises(SimulatorSetupError, match="used twice: a"):
        build_app([make_sim("a", ("GET", "/x")), make_sim("a", ("GET", "/y"))])


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        ("/v2/enqueue", "/v2/enqueue", True),
        ("/v2/enqueue", "/v2/change/enqueue", False),
        ("/api/v1/ping", "/bridges/{target}/api/v1/ping", False),
        ("/a/{x}/c", "/a/b/{y}", True),
        ("/a/b", "/a/b/c", False),
        ("/files/{tail:.*}", "/files/x/y", True),
    ],
)
def test_paths_overlap(a, b, overlap):
    assert paths_overlap(a, b) is overlap
    assert paths_overlap(b, a) is overlap


async def test_unknown_provider_lookup_names_the_loaded_ones():
    sim = Simulator(sims=[BridgeSim()])
    with pytest.raises(KeyError, match="loaded: imessage_bridge"):
        sim.provider("twilio")


async def test_simulator_serves_http_and_https_urls_on_loopback(sim):
    assert sim.http_url.startswith("http://127.0.0.1:")
    assert sim.https_url.startswith("https://127.0.0.1:")
    assert sim.ca_path.read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert isinstance(sim.provider("pagerduty"), PagerDutySim)


def test_simulator_thread_serves_until_exit():
    with SimulatorThread() as sim:
        assert "pagerduty" in sim.client().describe()["providers"]
        ca_path = sim.ca_path
    assert not ca_path.exists()


class ParkedBridge(BridgeSim):
    """Tells the test when a request has reached the scenario (and parks in `hanging`)."""

    def __init__(self) -> None:
        super().__init__()
        self.reached = asyncio.Event()

    async def delay(self, target: str) -> Scenario:
        self.reached.set()
        return await super().delay(target)


async def test_exit_is_bounded_with_a_hanging_request_in_flight(http):
    bridge = ParkedBridge()
    bridge.set_scenario("hanging")
    async with asyncio.timeout(10):
        async with Simulator(sims=[bridge]) as sim:
            request = asyncio.create_task(http.get(f"{sim.http_url}/api/v1/ping"))
            await bridge.reached.wait()
        # aiohttp may retry the GET once on a new connection, which the closed port refuses.
        with pytest.raises(aiohttp.ClientError):
            await request


async def test_a_port_in_use_is_an_error_and_leaves_nothing_open(sim):
    port = int(sim.http_url.rsplit(":", 1)[1])
    with pytest.raises(OSError):
        async with Simulator(http_port=port):
            pass

"""A bridge behind a reverse proxy, end to end: the real daemon, a proxy on loopback in front
of the simulator's bridge, and the simulator's PagerDuty.

When the Mac is down the proxy answers 502 with its HTML page. That is the bridge not
answering: it must page through `bridge_unreachable` at `page_after`, as a refused
connection does, and not through `integration_failing` after N probes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest
from aiohttp import web

from healthd.clock import FakeClock
from healthd.sim.app import SimulatorThread
from healthd.sim.client import SimClient
from tests.conftest import base_config, bridge, running_daemon
from tests.e2e.test_bridge_paging import BRIDGE, DEDUP, drained, probe, triggers
from tests.email_support import serve

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("secrets_env")]

BAD_GATEWAY = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


class ReverseProxy:
    """Forwards every request to `upstream`; answers 502 with an HTML page when the
    upstream hangs up without an answer, as nginx does."""

    def __init__(self, upstream: str, session: aiohttp.ClientSession) -> None:
        self.upstream = upstream
        self.session = session

    async def handle(self, request: web.Request) -> web.Response:
        try:
            async with self.session.request(
                request.method, self.upstream + request.path_qs, data=await request.read()
            ) as answer:
                body = await answer.read()
                return web.Response(
                    status=answer.status, body=body, content_type=answer.content_type
                )
        except aiohttp.ClientError:
            return web.Response(status=502, text=BAD_GATEWAY, content_type="text/html")


@pytest.fixture
async def proxy_url(sim: SimulatorThread) -> AsyncIterator[str]:
    async with aiohttp.ClientSession() as session:
        proxy = ReverseProxy(sim.http_url, session)
        async with serve(routes=[web.route("*", "/{tail:.*}", proxy.handle)]) as url:
            yield url


async def test_a_proxied_bridge_pages_at_page_after_not_before(
    sim: SimulatorThread, sim_client: SimClient, proxy_url: str
) -> None:
    entry = bridge(sim)
    entry["base_url"] = entry["base_url"].replace(sim.http_url, proxy_url)
    clock = FakeClock()
    async with running_daemon(base_config(sim, [entry]), clock=clock) as d:
        await probe(d, clock)
        sim_client.set_scenario("imessage_bridge", "offline", target="dc1")
        # The first 502 starts the timer: eleven of them, one a minute, span page_after
        # exactly (ten minutes), far past the N = 3 probes that fail an integration.
        for _ in range(11):
            await probe(d, clock)
        await drained(d)
        assert triggers(sim_client) == []
        latest = (await d.store.latest_results())[BRIDGE]
        assert [f.code for f in latest.findings] == ["bridge.proxy_error"]

        clock.advance(timedelta(seconds=1))  # just past page_after: the engine's tick
        await d.engine.evaluate()
        await drained(d)

    sent = triggers(sim_client)
    assert [e["body"]["dedup_key"] for e in sent] == [DEDUP]
    assert "unreachable for 10m" in sent[0]["body"]["payload"]["summary"]

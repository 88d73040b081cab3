"""A probe reads at most a bounded amount of one answer, decompressed, and says so.

Small misbehaving servers on loopback: an endless chunked body, a gzip bomb, a body larger
than the limit. Each must end in a `<prefix>.response_too_large` finding naming the limit,
after reading little (bytes the server got to send, or the probe's peak allocations), with
the probe's other checks still run.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web

from healthd import probing
from healthd.model import Finding, ProbeResult, Status
from healthd.registry import probes
from healthd.sim.fixtures import integration_entry, sim_credentials
from healthd.sim.statuspage import StatusPageSim
from healthd.sim.twilio import TwilioSim
from probes._http import MAX_BODY_BYTES, TRANSPORT_CODES, TransportFailure, request_json
from probes._twilio_http import SessionHttpClient
from probes.bridge import BridgeOptions, BridgeProbe
from probes.twilio import TwilioOptions, TwilioProbe
from tests.email_support import make_ctx, make_integration, serve, shared_catalog

MiB = 1 << 20
BOMB = gzip.compress(b"0" * (16 * MiB))  # 16 KiB on the wire
TWILIO_SID = "AC" + "e5" * 16


@dataclass
class Misbehaving:
    """`/endless/...` streams forever (chunked), `/large/...` 32 MiB (with a length),
    `/bomb/...` is 16 MiB of zeros gzipped, `/page/...` a JSON page of 1,000 long messages
    (3 MB). `sent` counts what the streams got to send."""

    sent: int = 0
    stream_ended: asyncio.Event = field(default_factory=asyncio.Event)

    async def _stream(self, request: web.Request, length: int | None) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        if length is not None:
            response.content_length = length
        await response.prepare(request)
        chunk = b"[" * 65536
        try:
            while length is None or self.sent < length:
                await response.write(chunk)
                self.sent += len(chunk)
        finally:
            self.stream_ended.set()
        return response

    async def endless(self, request: web.Request) -> web.StreamResponse:
        return await self._stream(request, None)

    async def large(self, request: web.Request) -> web.StreamResponse:
        return await self._stream(request, 32 * MiB)

    async def bomb(self, request: web.Request) -> web.Response:
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        return web.Response(body=BOMB, headers=headers)

    async def page(self, request: web.Request) -> web.Response:
        message = {"sid": "SM" + "0" * 32, "body": "é" * 1600, "status": "delivered"}
        return web.json_response({"messages": [message] * 1000}, dumps=json.dumps)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.route("*", f"/{name}/{{tail:.*}}", getattr(self, name))
            for name in ("endless", "bomb", "large", "page")
        ]


@pytest.fixture
async def bad() -> AsyncIterator[tuple[Misbehaving, str]]:
    server = Misbehaving()
    async with serve(routes=server.routes()) as url:
        yield server, url


async def bridge_check(base_url: str, *, timeout: float = 5.0) -> ProbeResult:
    integration = make_integration(
        "imessage_bridge", base_url, {"password": "limits-password"}, BridgeOptions()
    )
    async with aiohttp.ClientSession() as session:
        return await probing.check(BridgeProbe(), integration, make_ctx(session, timeout=timeout))


def too_large(result: ProbeResult, code: str) -> list[Finding]:
    """The findings with `code`: at least one, each failing and naming the limit."""
    found = [f for f in result.findings if f.code == code]
    assert found, [f.code for f in result.findings]
    for finding in found:
        assert finding.status is Status.FAILING and not finding.network_error
        assert "1 MiB" in finding.summary
    return found


async def test_an_endless_body_ends_in_a_finding_after_reading_about_the_limit(
    bad: tuple[Misbehaving, str],
) -> None:
    server, url = bad
    result = await bridge_check(f"{url}/endless")
    too_large(result, "bridge.response_too_large")
    async with asyncio.timeout(5):
        await server.stream_ended.wait()
    # What the server got to send: the limit, plus what the sockets' buffers held.
    assert server.sent < 16 * MiB


async def test_a_gzip_bomb_ends_in_a_finding_without_inflating_it(
    bad: tuple[Misbehaving, str],
) -> None:
    _, url = bad
    tracemalloc.start()
    try:
        result = await bridge_check(f"{url}/bomb")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    too_large(result, "bridge.response_too_large")
    assert peak < 4 * MiB  # the bomb inflates to 16 MiB


async def test_a_body_over_the_limit_ends_in_a_finding_without_reading_it_all(
    bad: tuple[Misbehaving, str],
) -> None:
    server, url = bad
    result = await bridge_check(f"{url}/large")
    too_large(result, "bridge.response_too_large")
    async with asyncio.timeout(5):
        await server.stream_ended.wait()
    assert server.sent < 16 * MiB  # of 32 MiB


async def test_a_bombed_twilio_messaging_api_leaves_the_other_checks_running(
    bad: tuple[Misbehaving, str],
) -> None:
    _, bad_url = bad
    async with serve(TwilioSim(), StatusPageSim()) as sim_url:
        entry = integration_entry("twilio", sim_url, TWILIO_SID, id="twilio-acme", tenant="acme")
        options = TwilioOptions(**{**entry["options"], "messaging_base_url": f"{bad_url}/bomb"})
        credentials = sim_credentials("twilio", TWILIO_SID)
        integration = make_integration("twilio", sim_url, credentials, options)
        async with aiohttp.ClientSession() as session:
            result = await probing.check(TwilioProbe(), integration, make_ctx(session))
    too_large(result, "twilio.response_too_large")
    ok = {f.check for f in result.findings if f.status is Status.OK}
    assert {"account", "platform"} <= ok


async def test_a_twilio_page_of_a_thousand_long_messages_is_read_whole(
    bad: tuple[Misbehaving, str],
) -> None:
    _, url = bad
    async with aiohttp.ClientSession() as session:
        client = SessionHttpClient(make_ctx(session), asyncio.get_running_loop().time() + 5)
        response = await client.request("GET", f"{url}/page/", params={"PageSize": 1000})
    assert response.status_code == 200 and len(response.text) > 3 * MiB


async def test_a_twilio_call_that_is_not_a_page_keeps_the_default_limit(
    bad: tuple[Misbehaving, str],
) -> None:
    _, url = bad
    async with aiohttp.ClientSession() as session:
        client = SessionHttpClient(make_ctx(session), asyncio.get_running_loop().time() + 5)
        with pytest.raises(TransportFailure) as failure:
            await client.request("GET", f"{url}/page/")
    assert failure.value.kind == "too_large"
    assert MAX_BODY_BYTES == MiB


@pytest.mark.parametrize("provider", sorted(probes()))
def test_every_probe_has_a_catalogue_entry_for_each_transport_failure(provider: str) -> None:
    prefix = probes()[provider].traits.code_prefix
    missing = [
        f"{prefix}.{code}"
        for code, _ in TRANSPORT_CODES.values()
        if shared_catalog().get(provider, f"{prefix}.{code}") is None
    ]
    assert missing == []


class _Recording:
    """A session that records each request's `timeout` and hands the request on."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session
        self.timeouts: list[aiohttp.ClientTimeout] = []

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        self.timeouts.append(kwargs["timeout"])
        return self._session.request(method, url, **kwargs)


async def test_a_timeout_over_five_seconds_is_not_rounded_up_past_the_runners_deadline() -> None:
    """aiohttp ceils a timeout above its `ceil_threshold` to the next whole second of the
    loop's clock; the probe's share of a 6 s deadline (5.4 s) could then end after it."""
    async with serve(routes=[web.get("/ok", _empty)]) as url, aiohttp.ClientSession() as real:
        session = _Recording(real)
        ctx = make_ctx(cast(aiohttp.ClientSession, session), timeout=5.4)
        await request_json(ctx, "GET", f"{url}/ok")

    (timeout,) = session.timeouts
    assert timeout.total == 5.4 and timeout.ceil_threshold > 5.4


async def _empty(request: web.Request) -> web.Response:
    return web.json_response({})

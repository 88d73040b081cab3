"""The iMessage bridge probe against the bridge simulator on loopback, one behaviour per test."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from healthd import probing
from healthd.clock import SystemClock
from healthd.http import SharedAnswers
from healthd.interfaces import ProbeContext
from healthd.model import Category, Finding, ProbeResult, Status
from healthd.sim.bridge import DEFAULT_TARGET, BridgeSim
from probes.bridge import BridgeOptions, BridgeProbe
from tests.email_support import make_integration, serve, shared_catalog

PLANTED = "planted-bridge-password-4c1e"
CLOSED_PORT_URL = "http://127.0.0.1:9"


@dataclass
class Env:
    sim: BridgeSim
    base: str
    session: aiohttp.ClientSession

    def set(self, scenario: str, **params: Any) -> None:
        self.sim.set_scenario(scenario, DEFAULT_TARGET, {"password": PLANTED, **params})

    async def run(
        self,
        *,
        base_url: str | None = None,
        password: str = PLANTED,
        timeout: float = 5.0,
        shared: SharedAnswers | None = None,
        **options: Any,
    ) -> ProbeResult:
        integration = make_integration(
            "imessage_bridge",
            base_url or self.base,
            {"password": password},
            BridgeOptions(**options),
        )
        ctx = ProbeContext(
            session=self.session,
            clock=SystemClock(),
            catalog=shared_catalog(),
            timeout=timeout,
            shared=shared,
        )
        async with asyncio.timeout(timeout + 5):
            return await probing.check(BridgeProbe(), integration, ctx)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    sim = BridgeSim()
    async with serve(sim) as base, aiohttp.ClientSession() as session:
        yield Env(sim, base, session)


def only(result: ProbeResult, code: str, check: str | None = None) -> Finding:
    found = [f for f in result.findings if f.code == code and check in (None, f.check)]
    assert len(found) == 1, [(f.code, f.check) for f in result.findings]
    return found[0]


async def test_a_healthy_bridge_is_ok_on_every_check(env: Env) -> None:
    env.set("ok")
    result = await env.run()
    assert result.status is Status.OK
    assert [(f.check, f.code) for f in result.findings] == [
        ("reachability", "bridge.ok"),
        ("imessage", "bridge.ok"),
        ("backlog", "bridge.backlog"),
    ]
    assert "1.9.9" in result.findings[0].summary


async def test_a_dropped_connection_is_unreachable_and_the_other_checks_are_not_run(
    env: Env,
) -> None:
    env.set("offline")
    result = await env.run()
    assert result.status is Status.UNREACHABLE
    found = only(result, "bridge.unreachable")
    assert found.network_error
    assert found.category is Category.PROVIDER
    assert [f.check for f in result.findings] == ["reachability"]


async def test_a_refused_connection_is_unreachable_in_the_bridge_s_own_words(env: Env) -> None:
    result = await env.run(base_url=CLOSED_PORT_URL)
    found = only(result, "bridge.unreachable")
    assert result.status is Status.UNREACHABLE
    assert found.summary.startswith("iMessage bridge: cannot connect to 127.0.0.1:9")


async def test_imessage_signed_out_fails_while_the_server_answers(env: Env) -> None:
    env.set("signed_out")
    result = await env.run()
    assert result.status is Status.FAILING
    assert only(result, "bridge.ok", "reachability").status is Status.OK
    assert only(result, "bridge.imessage_signed_out").check == "imessage"


async def test_a_disconnected_private_api_helper_degrades(env: Env) -> None:
    env.set("helper_disconnected")
    result = await env.run()
    assert only(result, "bridge.private_api_disconnected").status is Status.DEGRADED
    assert result.status is Status.DEGRADED


async def test_a_queue_backlog_past_the_degraded_count_degrades_with_examples(env: Env) -> None:
    env.set("backlog", undelivered=5, scheduled_errors=2)
    result = await env.run()
    found = only(result, "bridge.backlog")
    assert (found.status, found.count) == (Status.DEGRADED, 7)
    assert "5 outgoing iMessages undelivered and 2 scheduled" in found.summary
    assert len(found.examples) == 3


async def test_a_queue_backlog_past_the_failing_count_fails(env: Env) -> None:
    env.set("backlog", undelivered=25, scheduled_errors=0)
    found = only(await env.run(), "bridge.backlog")
    assert (found.status, found.count) == (Status.FAILING, 25)


async def test_messages_younger_than_one_repush_cycle_are_not_stuck(env: Env) -> None:
    env.set("backlog", undelivered=25, scheduled_errors=0, age_seconds=30)
    found = only(await env.run(), "bridge.backlog")
    assert (found.status, found.count) == (Status.OK, 0)


async def test_without_check_backlog_only_server_info_is_asked(env: Env) -> None:
    env.set("backlog")
    result = await env.run(check_backlog=False)
    assert [f.check for f in result.findings] == ["reachability", "imessage"]
    assert env.sim.requests == 1


async def test_the_backlog_is_counted_once_per_backlog_every(env: Env) -> None:
    env.set("ok")
    shared = SharedAnswers(SystemClock())
    await env.run(shared=shared)
    await env.run(shared=shared)
    assert env.sim.requests == 4  # server info twice, the backlog's two requests once


async def test_an_answer_that_is_not_json_is_a_bad_response_not_a_network_error(
    env: Env,
) -> None:
    env.set("truncated")
    result = await env.run()
    found = only(result, "bridge.bad_response")
    assert result.status is Status.FAILING
    assert not found.network_error
    assert found.summary.startswith("iMessage bridge: HTTP 200 with a body that is not JSON")


async def test_a_proxy_s_html_page_is_the_bridge_not_answering(env: Env) -> None:
    env.set("html")  # 200 with a proxy's "502 Bad Gateway" page
    result = await env.run()
    found = only(result, "bridge.proxy_error")
    assert result.status is Status.UNREACHABLE
    assert (found.category, found.network_error) == (Category.PROVIDER, False)
    assert "a proxy in front of it answered HTTP 200: 502 Bad Gateway" in found.summary
    assert [f.check for f in result.findings] == ["reachability"]


@dataclass
class Gateway:
    """A reverse proxy whose upstream (the Mac) is down: every path gets `answer`."""

    status: int = 502
    body: str = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    content_type: str = "text/html"

    async def handle(self, request: web.Request) -> web.Response:
        return web.Response(status=self.status, text=self.body, content_type=self.content_type)


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (502, "<html><head><title>502 Bad Gateway</title></head></html>", "text/html"),
        (503, "no healthy upstream", "text/plain"),
        (504, '{"message": "upstream request timeout"}', "application/json"),
        (500, "<!DOCTYPE html><html><body>Internal Server Error</body></html>", "text/plain"),
    ],
)
async def test_a_gateway_error_or_html_page_from_a_proxy_is_unreachable(
    env: Env, status: int, body: str, content_type: str
) -> None:
    gateway = Gateway(status, body, content_type)
    async with serve(routes=[web.route("*", "/{tail:.*}", gateway.handle)]) as proxy:
        result = await env.run(base_url=proxy)
    found = only(result, "bridge.proxy_error")
    assert (result.status, found.provider_code) == (Status.UNREACHABLE, str(status))
    assert found.remediation and not found.network_error


async def test_a_proxy_answering_for_the_backlog_requests_is_the_bridge_away(env: Env) -> None:
    env.set("ok")
    upstream = env.base

    async def info_passes_the_rest_fails(request: web.Request) -> web.StreamResponse:
        if request.path.endswith("/server/info"):
            async with env.session.get(upstream + request.path_qs) as answer:
                return web.json_response(await answer.json())
        return web.Response(status=503, text="Service Unavailable")

    async with serve(routes=[web.route("*", "/{tail:.*}", info_passes_the_rest_fails)]) as proxy:
        result = await env.run(base_url=proxy)
    assert only(result, "bridge.proxy_error", "backlog").status is Status.UNREACHABLE


async def test_a_server_error_is_a_bad_response_with_its_status(env: Env) -> None:
    env.set("server_error")
    found = only(await env.run(), "bridge.bad_response")
    assert found.provider_code == "500"
    assert "The server has encountered an error" in found.summary


async def test_a_wrong_password_is_auth_invalid(env: Env) -> None:
    env.set("ok")
    result = await env.run(password="not-the-password")
    found = only(result, "bridge.auth_invalid")
    assert (found.status, found.provider_code) == (Status.FAILING, "401")
    assert found.category is Category.ACCOUNT


async def test_a_hanging_bridge_times_out_within_the_deadline_share(env: Env) -> None:
    env.set("hanging")
    result = await env.run(timeout=0.5)
    found = only(result, "bridge.timeout")
    assert result.status is Status.UNREACHABLE
    assert found.network_error
    # The probe's own timeout, at 90% of the runner's deadline, not the runner's cut-off.
    assert found.summary == "iMessage bridge: no answer within 0.45s"


@pytest.mark.parametrize("scenario", sorted(BridgeSim.scenarios | {"hanging"}))
async def test_the_password_never_appears_in_findings_or_logs(
    env: Env, scenario: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    env.set(scenario)
    result = await env.run(timeout=0.5 if scenario == "hanging" else 5.0)
    assert PLANTED not in repr(result.to_dict()) + caplog.text

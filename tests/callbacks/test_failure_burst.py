"""A failure burst arriving by callback reaches the tenant's webhook once, through the outbox."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from healthd.clock import FakeClock
from healthd.sim.callbacks import CallbackSender, SendGridSigner, twilio_fields, twilio_status
from tests.callbacks.conftest import ACCOUNT_SID, AUTH_TOKEN, T0, TWILIO_ID, callback_config
from tests.conftest import running_daemon


class Receiver:
    """The tenant's webhook endpoint: keeps every event it is sent."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.events.append(json.loads(await request.read()))
        self.arrived.set()
        return web.Response(status=204)

    def of(self, rule: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["rule"] == rule]

    async def wait_for(self, rule: str, count: int) -> None:
        """Until `count` events of `rule` have arrived."""
        while len(self.of(rule)) < count:
            self.arrived.clear()
            await self.arrived.wait()


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    hook = Receiver()
    app = web.Application()
    app.add_routes([web.post("/hook", hook.handle)])
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    yield hook, str(server.make_url("/hook"))
    await server.close()


async def test_a_burst_of_failed_messages_fires_the_tenant_webhook_once(
    twilio_env: None,
    signer: SendGridSigner,
    receiver: tuple[Receiver, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook, url = receiver
    monkeypatch.setenv("HEALTHD_TEST_HOOK_SECRET", "hook-secret-for-tests")
    doc = callback_config(signer)
    doc["alerting"] = {"webhooks": {"acme": {"url": url, "secret": "env:HEALTHD_TEST_HOOK_SECRET"}}}
    clock = FakeClock(T0)
    async with (
        running_daemon(doc, clock=clock, alert_tick=0.05, outbox_poll=0.05) as daemon,
        aiohttp.ClientSession() as session,
    ):
        sender = CallbackSender(session)
        target = f"{daemon.url}/callbacks/{TWILIO_ID}"
        for n in range(200):
            code = "30003" if n % 4 else "30007"
            fields = twilio_fields(ACCOUNT_SID, f"SM{n:04d}", "undelivered", code)
            assert await sender.post(target, twilio_status(target, AUTH_TOKEN, fields)) == 200
        async with asyncio.timeout(30):
            await daemon.ledger.drained()
            await hook.wait_for("messages_failing", 1)
            await hook.wait_for("content_spike", 1)  # a quarter of them filtered (30007)
        # Drained: everything counted, nothing more due within the minute, nothing queued.
        assert await daemon.messages_failing.flush() == 0
        assert await daemon.content_spike.flush() == 0
        assert await daemon.store.outbox_pending() == {}
        during_the_minute = len(hook.of("messages_failing"))

        # Counted within the minute, it waits with the rest for the next event: the clock
        # moves only once it is counted, so the next flush cannot go without it.
        fields = twilio_fields(ACCOUNT_SID, "SMlater", "failed", "21610")
        assert await sender.post(target, twilio_status(target, AUTH_TOKEN, fields)) == 200
        async with asyncio.timeout(30):
            await daemon.ledger.drained()
        clock.advance(timedelta(minutes=1))  # what the first event did not carry goes next
        async with asyncio.timeout(30):
            await hook.wait_for("messages_failing", 2)

    failing = hook.of("messages_failing")
    assert during_the_minute == 1
    assert {e["tenant"] for e in hook.events} == {"acme"}
    assert len(failing) == 2
    assert sum(e["custom_details"]["failed"] for e in failing) == 201
    # One warning, as soon as enough messages were counted to judge (20), however many came.
    (spike,) = hook.of("content_spike")
    details = spike["custom_details"]
    assert 20 <= details["messages"] <= 200
    assert details["filtered"] / details["messages"] >= 0.05
    first = {t["provider_code"] for t in failing[0]["custom_details"]["top_codes"]}
    assert first <= {"30003", "30007"}

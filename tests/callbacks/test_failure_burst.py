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
        async with asyncio.timeout(10):
            await daemon.ledger.drained()
            await hook.arrived.wait()
        # Drained: everything counted, nothing more due within the minute, nothing queued.
        assert await daemon.messages_failing.flush() == 0
        assert await daemon.store.outbox_pending() == {}
        during_the_minute = len(hook.events)

        hook.arrived.clear()
        clock.advance(timedelta(minutes=1))  # what the first event did not carry goes next
        fields = twilio_fields(ACCOUNT_SID, "SMlater", "failed", "21610")
        assert await sender.post(target, twilio_status(target, AUTH_TOKEN, fields)) == 200
        async with asyncio.timeout(10):
            await hook.arrived.wait()

    assert during_the_minute == 1
    assert {e["rule"] for e in hook.events} == {"messages_failing"}
    assert {e["tenant"] for e in hook.events} == {"acme"}
    assert len(hook.events) == 2
    assert sum(e["custom_details"]["failed"] for e in hook.events) == 201
    first = {t["provider_code"] for t in hook.events[0]["custom_details"]["top_codes"]}
    assert first <= {"30003", "30007"}

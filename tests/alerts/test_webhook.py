from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from healthd.alerts.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookNotifier,
    build_body,
    sign,
    verify,
)
from healthd.clock import FakeClock
from healthd.errors import DeliveryError
from healthd.secrets import Secret
from tests.alerts.conftest import T0, make_event

SECRET = "whsec-marker-5f1e"
BODY = b'{"action": "trigger"}'
NOW = str(int(T0.timestamp()))


def test_signature_round_trip_verifies():
    assert verify(SECRET, NOW, BODY, sign(SECRET, NOW, BODY))


@pytest.mark.parametrize(
    ("secret", "timestamp", "body"),
    [
        ("other-secret", NOW, BODY),
        (SECRET, str(int(NOW) + 1), BODY),
        (SECRET, NOW, b'{"action": "resolve"}'),
    ],
)
def test_any_tampering_fails_verification(secret, timestamp, body):
    assert not verify(secret, timestamp, body, sign(SECRET, NOW, BODY))


def test_signature_has_the_documented_form():
    signature = sign(SECRET, NOW, BODY)
    assert signature.startswith("sha256=")
    assert len(signature) == len("sha256=") + 64


def test_stale_timestamp_fails_verification_when_now_is_given():
    signature = sign(SECRET, NOW, BODY)
    assert verify(SECRET, NOW, BODY, signature, now=float(NOW) + 299)
    assert not verify(SECRET, NOW, BODY, signature, now=float(NOW) + 301)
    assert not verify(SECRET, "not-a-number", BODY, signature, now=float(NOW))


@dataclass
class Receiver:
    """A tenant's endpoint: verifies each delivery like a receiver would, answers as told."""

    statuses: list[int] = field(default_factory=list)
    verified: list[dict[str, object]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        timestamp = request.headers[TIMESTAMP_HEADER]
        if verify(SECRET, timestamp, body, request.headers[SIGNATURE_HEADER]):
            self.verified.append(json.loads(body))
        status = self.statuses.pop(0) if self.statuses else 204
        headers = {"Retry-After": "7"} if status == 429 else {}
        return web.Response(status=status, text="nope" if status >= 400 else "", headers=headers)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    rx = Receiver()
    app = web.Application()
    app.router.add_post("/hooks/healthd", rx.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield rx, f"http://127.0.0.1:{port}/hooks/healthd"
    finally:
        await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def notifier_for(url: str, session: aiohttp.ClientSession) -> WebhookNotifier:
    return WebhookNotifier("acme", url, Secret(SECRET), session, clock=FakeClock(T0))


async def test_delivery_is_signed_so_the_receiver_can_verify_it(receiver, session):
    rx, url = receiver
    event = make_event(dedup_key="healthd/tenant/acme-twilio", rule="tenant_failing")
    await notifier_for(url, session).send(event)
    assert rx.verified == [json.loads(build_body("acme", event))]
    assert rx.verified[0]["tenant"] == "acme"


@pytest.mark.parametrize(("status", "permanent"), [(400, True), (404, True), (408, False)])
async def test_4xx_is_permanent_except_request_timeout(receiver, session, status, permanent):
    rx, url = receiver
    rx.statuses.append(status)
    with pytest.raises(DeliveryError) as info:
        await notifier_for(url, session).send(make_event())
    assert info.value.permanent is permanent
    assert f"answered {status}: nope" in str(info.value)


async def test_429_is_transient_with_retry_after(receiver, session):
    rx, url = receiver
    rx.statuses.append(429)
    with pytest.raises(DeliveryError) as info:
        await notifier_for(url, session).send(make_event())
    assert (info.value.permanent, info.value.retry_after) == (False, 7)


async def test_5xx_is_transient(receiver, session):
    rx, url = receiver
    rx.statuses.append(503)
    with pytest.raises(DeliveryError) as info:
        await notifier_for(url, session).send(make_event())
    assert not info.value.permanent


async def test_unreachable_receiver_is_transient_and_never_shows_the_secret(session):
    with pytest.raises(DeliveryError) as info:
        await notifier_for("http://127.0.0.1:1/hook", session).send(make_event())
    assert not info.value.permanent
    assert SECRET not in str(info.value)

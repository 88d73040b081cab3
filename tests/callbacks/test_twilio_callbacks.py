"""Twilio status callbacks over real HTTP: verified with the twilio SDK, counted once."""

from __future__ import annotations

from datetime import timedelta

import aiohttp

from healthd.clock import FakeClock
from healthd.ledger import Key
from healthd.sim.callbacks import CallbackSender, SendGridSigner, twilio_fields, twilio_status
from tests.callbacks.conftest import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    T0,
    TWILIO_ID,
    Callbacks,
    callback_config,
)
from tests.conftest import running_daemon

FAILED_21703 = Key("failed", "21703", "sender_config")
UNDELIVERED_30003 = Key("undelivered", "30003", "recipient")


def status(cb: Callbacks, sid: str, state: str, code: str | None = None, **kw: bool):  # type: ignore[no-untyped-def]
    return twilio_status(
        cb.url(TWILIO_ID), AUTH_TOKEN, twilio_fields(ACCOUNT_SID, sid, state, code), **kw
    )


async def test_a_21703_failure_by_callback_is_counted_as_a_sender_config_error(
    callbacks: Callbacks,
) -> None:
    assert await callbacks.post(TWILIO_ID, status(callbacks, "SM1", "failed", "21703")) == 200
    assert await callbacks.counts(TWILIO_ID) == {FAILED_21703: 1}
    assert (
        callbacks.metric(
            "healthd_delivery_messages_total",
            provider="twilio",
            status="failed",
            provider_code="21703",
            category="sender_config",
        )
        == 1
    )


async def test_a_forged_signature_is_refused_and_recorded_nowhere(callbacks: Callbacks) -> None:
    forged = status(callbacks, "SM1", "undelivered", "30003", forged=True)
    assert await callbacks.post(TWILIO_ID, forged) == 403
    assert await callbacks.counts(TWILIO_ID) == {}
    assert await callbacks.daemon.store.counted_deliveries(T0 - timedelta(days=1)) == []
    assert callbacks.metric("healthd_callbacks_total", provider="twilio", outcome="forged") == 1


async def test_a_callback_without_a_signature_is_refused(callbacks: Callbacks) -> None:
    signed = status(callbacks, "SM1", "delivered")
    unsigned = type(signed)(signed.body, {"Content-Type": "application/x-www-form-urlencoded"})
    assert await callbacks.post(TWILIO_ID, unsigned) == 403
    assert await callbacks.counts(TWILIO_ID) == {}
    assert callbacks.metric("healthd_callbacks_total", provider="twilio", outcome="unsigned") == 1


async def test_a_replayed_callback_is_counted_once(callbacks: Callbacks) -> None:
    signed = status(callbacks, "SM1", "undelivered", "30003")
    assert [await callbacks.post(TWILIO_ID, signed) for _ in range(3)] == [200, 200, 200]
    assert await callbacks.counts(TWILIO_ID) == {UNDELIVERED_30003: 1}


async def test_a_late_receipt_after_sent_counts_the_message_once(callbacks: Callbacks) -> None:
    assert await callbacks.post(TWILIO_ID, status(callbacks, "SM1", "sent")) == 200
    callbacks.clock.advance(timedelta(minutes=40))
    assert await callbacks.post(TWILIO_ID, status(callbacks, "SM1", "undelivered", "30003")) == 200
    assert await callbacks.counts(TWILIO_ID) == {UNDELIVERED_30003: 1}


async def test_a_signed_callback_without_a_message_sid_is_a_bad_request(
    callbacks: Callbacks,
) -> None:
    fields = {"AccountSid": ACCOUNT_SID, "MessageStatus": "delivered"}
    signed = twilio_status(callbacks.url(TWILIO_ID), AUTH_TOKEN, fields)
    assert await callbacks.post(TWILIO_ID, signed) == 400


async def test_an_unknown_integration_is_answered_as_a_forged_signature_is(
    callbacks: Callbacks,
) -> None:
    unknown = await callbacks.answer("nope", status(callbacks, "SM1", "delivered"))
    forged = await callbacks.answer(TWILIO_ID, status(callbacks, "SM1", "delivered", forged=True))

    assert unknown == forged == (403, "the request's signature does not verify")
    labels = {"provider": "unknown", "outcome": "unknown_integration"}
    assert callbacks.metric("healthd_callbacks_total", **labels) == 1
    assert await callbacks.counts(TWILIO_ID) == {}


async def test_the_signature_is_checked_against_the_configured_public_url(
    twilio_env: None, signer: SendGridSigner
) -> None:
    doc = callback_config(signer)
    doc["callbacks"] = {"public_url": "https://healthd.example.com/"}
    public = f"https://healthd.example.com/callbacks/{TWILIO_ID}"
    async with (
        running_daemon(doc, clock=FakeClock(T0)) as daemon,
        aiohttp.ClientSession() as session,
    ):
        sender = CallbackSender(session)
        url = f"{daemon.url}/callbacks/{TWILIO_ID}"
        as_proxied = twilio_status(public, AUTH_TOKEN, twilio_fields(ACCOUNT_SID, "SM1", "read"))
        as_local = twilio_status(url, AUTH_TOKEN, twilio_fields(ACCOUNT_SID, "SM2", "read"))
        assert await sender.post(url, as_proxied) == 200
        assert await sender.post(url, as_local) == 403

"""Twilio Event Streams (a webhook sink) over real HTTP: CloudEvents verified with the twilio
SDK's body-hash check, counted into the same ledger as status callbacks, once a message."""

from __future__ import annotations

import dataclasses

from healthd.ledger import Key
from healthd.sim.callbacks import twilio_event, twilio_events, twilio_fields, twilio_status
from tests.callbacks.conftest import ACCOUNT_SID, AUTH_TOKEN, TWILIO_ID, Callbacks

DELIVERED = Key("delivered", None, None)
FILTERED = Key("undelivered", "30007", "content")
FAILED_21703 = Key("failed", "21703", "sender_config")


def events(cb: Callbacks, *statuses: tuple[str, str, str | None], forged: bool = False):  # type: ignore[no-untyped-def]
    batch = [twilio_event(ACCOUNT_SID, sid, status, code) for sid, status, code in statuses]
    return twilio_events(cb.url(TWILIO_ID), AUTH_TOKEN, batch, forged=forged)


async def test_a_batch_of_message_events_is_counted_by_status_and_code(
    callbacks: Callbacks,
) -> None:
    batch = events(
        callbacks,
        ("SM1", "sent", None),
        ("SM1", "delivered", None),
        ("SM2", "undelivered", "30007"),
        ("SM3", "failed", "21703"),
    )
    assert await callbacks.post(TWILIO_ID, batch) == 200
    assert await callbacks.counts(TWILIO_ID) == {DELIVERED: 1, FILTERED: 1, FAILED_21703: 1}


async def test_a_message_reported_by_status_callback_and_by_event_is_counted_once(
    callbacks: Callbacks,
) -> None:
    fields = twilio_fields(ACCOUNT_SID, "SM1", "undelivered", "30007")
    by_callback = twilio_status(callbacks.url(TWILIO_ID), AUTH_TOKEN, fields)
    assert await callbacks.post(TWILIO_ID, by_callback) == 200
    assert (
        await callbacks.post(TWILIO_ID, events(callbacks, ("SM1", "undelivered", "30007"))) == 200
    )
    assert await callbacks.counts(TWILIO_ID) == {FILTERED: 1}


async def test_a_batch_signed_with_another_token_is_refused_and_recorded_nowhere(
    callbacks: Callbacks,
) -> None:
    forged = events(callbacks, ("SM1", "delivered", None), forged=True)
    assert await callbacks.post(TWILIO_ID, forged) == 403
    assert await callbacks.counts(TWILIO_ID) == {}
    assert callbacks.metric("healthd_callbacks_total", provider="twilio", outcome="forged") == 1


async def test_a_body_changed_after_signing_fails_its_hash_and_is_refused(
    callbacks: Callbacks,
) -> None:
    signed = events(callbacks, ("SM1", "delivered", None))
    changed = dataclasses.replace(signed, body=signed.body.replace(b"DELIVERED", b"FAILED"))
    assert await callbacks.post(TWILIO_ID, changed) == 403
    assert await callbacks.counts(TWILIO_ID) == {}


async def test_a_json_body_without_a_body_hash_in_the_url_is_refused(callbacks: Callbacks) -> None:
    signed = events(callbacks, ("SM1", "delivered", None))
    assert await callbacks.post(TWILIO_ID, dataclasses.replace(signed, query={})) == 403
    assert callbacks.metric("healthd_callbacks_total", provider="twilio", outcome="unsigned") == 1


async def test_other_event_types_in_a_batch_are_left_out(callbacks: Callbacks) -> None:
    inbound = twilio_event(ACCOUNT_SID, "SM9", "delivered") | {
        "type": "com.twilio.messaging.inbound-message.received"
    }
    batch = twilio_events(
        callbacks.url(TWILIO_ID),
        AUTH_TOKEN,
        [inbound, twilio_event(ACCOUNT_SID, "SM1", "delivered")],
    )
    assert await callbacks.post(TWILIO_ID, batch) == 200
    assert await callbacks.counts(TWILIO_ID) == {DELIVERED: 1}

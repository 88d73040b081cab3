"""SendGrid's signed Event Webhook over real HTTP: the sendgrid SDK verifies it."""

from __future__ import annotations

from datetime import timedelta

from healthd.ledger import Key
from healthd.sim.callbacks import sendgrid_event
from tests.callbacks.conftest import SENDGRID_ID, T0, Callbacks

NOW = int(T0.timestamp())
BOUNCE = Key("bounce", "5.1.1", "recipient")
DELIVERED = Key("delivered", None, None)


async def test_signed_events_are_counted_by_status_code_and_category(
    callbacks: Callbacks,
) -> None:
    events = [
        sendgrid_event("m1.filter1", "processed", NOW),
        sendgrid_event("m1.filter1", "delivered", NOW),
        sendgrid_event("m2.filter1", "bounce", NOW, status="5.1.1"),
        sendgrid_event("m3.filter1", "open", NOW),
    ]
    assert await callbacks.post(SENDGRID_ID, callbacks.signer.events(events, NOW)) == 200
    assert await callbacks.counts(SENDGRID_ID) == {DELIVERED: 1, BOUNCE: 1}


async def test_a_batch_signed_outside_the_tolerance_is_refused_and_recorded_nowhere(
    callbacks: Callbacks,
) -> None:
    old = NOW - int(timedelta(minutes=11).total_seconds())
    events = [sendgrid_event("m1.filter1", "bounce", old, status="5.1.1")]
    assert await callbacks.post(SENDGRID_ID, callbacks.signer.events(events, old)) == 403
    assert await callbacks.counts(SENDGRID_ID) == {}
    assert await callbacks.daemon.store.counted_deliveries(T0 - timedelta(days=1)) == []
    assert callbacks.metric("healthd_callbacks_total", provider="sendgrid", outcome="stale") == 1


async def test_a_batch_signed_with_another_key_is_refused(callbacks: Callbacks) -> None:
    events = [sendgrid_event("m1.filter1", "delivered", NOW)]
    forged = callbacks.signer.events(events, NOW, forged=True)
    assert await callbacks.post(SENDGRID_ID, forged) == 403
    assert await callbacks.counts(SENDGRID_ID) == {}
    assert callbacks.metric("healthd_callbacks_total", provider="sendgrid", outcome="forged") == 1


async def test_a_burst_of_ten_thousand_events_is_all_counted(callbacks: Callbacks) -> None:
    for batch in range(10):
        events = [sendgrid_event(f"m{batch}-{n}.filter1", "delivered", NOW) for n in range(1000)]
        assert await callbacks.post(SENDGRID_ID, callbacks.signer.events(events, NOW)) == 200
    assert await callbacks.counts(SENDGRID_ID) == {DELIVERED: 10_000}
    assert (
        callbacks.metric(
            "healthd_delivery_messages_total",
            provider="sendgrid",
            status="delivered",
            provider_code="",
            category="",
        )
        == 10_000
    )

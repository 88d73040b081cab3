"""`healthd_delivery_error_rate`: an integration that needs attention shows its hour's
sender-side failure share on /metrics; an ok one, however busy, adds no series."""

from __future__ import annotations

import asyncio

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from healthd.metrics import DeliveryRates
from healthd.sim.callbacks import twilio_fields, twilio_status
from tests.callbacks.conftest import ACCOUNT_SID, AUTH_TOKEN, TWILIO_ID, Callbacks

GAUGE = "healthd_delivery_error_rate"


async def _rates(callbacks: Callbacks) -> dict[str, float]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{callbacks.daemon.url}/metrics") as answer:
            text = await answer.text()
    return {
        sample.labels["integration"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == GAUGE
        for sample in family.samples
    }


async def _send(callbacks: Callbacks, sid: str, status: str, code: str | None) -> None:
    fields = twilio_fields(ACCOUNT_SID, sid, status, code)
    signed = twilio_status(callbacks.url(TWILIO_ID), AUTH_TOKEN, fields)
    assert await callbacks.post(TWILIO_ID, signed) == 200


async def test_an_integration_needing_attention_shows_its_error_rate(callbacks: Callbacks) -> None:
    for n in range(3):
        await _send(callbacks, f"SM{n}", "delivered", None)
    await _send(callbacks, "SMx", "failed", "21408")  # sender_config: counts
    await _send(callbacks, "SMy", "undelivered", "30003")  # recipient: left out
    await callbacks.counts(TWILIO_ID)
    before = await _rates(callbacks)
    # Its API (a closed loopback port) does not answer: the run fails, it needs attention.
    await callbacks.daemon.runner.run_once(TWILIO_ID)
    async with asyncio.timeout(30):  # /metrics renders at most once a second: wait for it
        while not (after := await _rates(callbacks)):
            await asyncio.sleep(0.1)

    assert before == {}
    assert after == {TWILIO_ID: 1 / 5}


def test_the_gauge_lists_only_the_detailed_integrations_with_messages() -> None:
    from tests.alerts.test_messages_failing import TWILIO

    rates = {TWILIO.id: 0.5, "ok-and-busy": 0.9}
    quiet = DeliveryRates(lambda: [TWILIO], lambda _: None)
    busy = DeliveryRates(lambda: [TWILIO], rates.get)
    assert [m.samples for m in quiet.collect()] == [[]]
    ((sample,),) = [m.samples for m in busy.collect()]
    assert (sample.labels["integration"], sample.value) == (TWILIO.id, 0.5)

"""The support bundle: message ids with one code, from the ledger, for one tenant only."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import aiohttp

from healthd.sim.callbacks import twilio_fields, twilio_status
from tests.callbacks.conftest import ACCOUNT_SID, AUTH_TOKEN, TWILIO_ID, Callbacks
from tests.conftest import ADMIN_TOKEN, TENANT_TOKENS


async def _post(cb: Callbacks, sid: str, status: str, code: str) -> None:
    fields = twilio_fields(ACCOUNT_SID, sid, status, code)
    assert await cb.post(TWILIO_ID, twilio_status(cb.url(TWILIO_ID), AUTH_TOKEN, fields)) == 200


async def _examples(cb: Callbacks, query: str, token: str = ADMIN_TOKEN) -> tuple[int, Any]:
    await cb.counts(TWILIO_ID)  # everything posted is written
    url = f"{cb.daemon.url}/api/v1/integrations/{TWILIO_ID}/examples?{query}"
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers={"Authorization": f"Bearer {token}"}) as r,
    ):
        return r.status, await r.json(content_type=None)


async def test_the_bundle_has_three_sids_from_the_last_24_hours(callbacks: Callbacks) -> None:
    await _post(callbacks, "SMold", "undelivered", "30003")
    callbacks.clock.advance(timedelta(hours=25))
    for n in range(3):
        await _post(callbacks, f"SM{n}", "undelivered", "30003")
        callbacks.clock.advance(timedelta(minutes=1))
    await _post(callbacks, "SMother", "failed", "21610")
    status, body = await _examples(callbacks, "code=30003")
    assert status == 200
    assert body["window"] == "24h" and body["count"] == 3
    assert [e["message_id"] for e in body["examples"]] == ["SM2", "SM1", "SM0"]
    assert {(e["status"], e["provider_code"]) for e in body["examples"]} == {
        ("undelivered", "30003")
    }
    assert body["fix"]


async def test_30007_examples_go_back_seven_days(callbacks: Callbacks) -> None:
    await _post(callbacks, "SMweek", "undelivered", "30007")
    callbacks.clock.advance(timedelta(days=6))
    status, body = await _examples(callbacks, "code=30007")
    assert (status, body["window"]) == (200, "7d")
    assert [e["message_id"] for e in body["examples"]] == ["SMweek"]


async def test_another_tenants_integration_answers_not_found(callbacks: Callbacks) -> None:
    await _post(callbacks, "SM1", "undelivered", "30003")
    own, _ = await _examples(callbacks, "code=30003", TENANT_TOKENS["acme"])
    other, body = await _examples(callbacks, "code=30003", TENANT_TOKENS["globex"])
    assert (own, other) == (200, 404)
    assert "SM1" not in str(body)


async def test_a_missing_code_is_a_bad_request(callbacks: Callbacks) -> None:
    status, body = await _examples(callbacks, "")
    assert status == 400 and "code" in body["detail"]

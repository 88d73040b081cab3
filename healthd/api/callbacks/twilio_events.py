"""Twilio Event Streams (a webhook sink): message status events as CloudEvents.

A sink POSTs a JSON array of CloudEvents (`specversion` 1.0); the outbound message
events have types `com.twilio.messaging.message.<status>` (queued, sent, delivered,
undelivered, failed, read) and `data` with `messageSid`, `messageStatus` (upper case)
and, when delivery failed, an integer `errorCode`. Twilio signs a JSON body as it signs
any webhook with one: it appends `bodySHA256=<hex SHA-256 of the body>` to the sink's URL
and signs that URL with no parameters (`X-Twilio-Signature`, the account's auth token);
the twilio SDK's `RequestValidator.validate(url, body, signature)` checks both.

The events become the same outcomes as status callbacks (message id and lower-case
status), so the ledger counts a message once whichever way it came. Other event types
(inbound messages, other products) are left out.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from twilio.request_validator import RequestValidator
from yarl import URL

from healthd.api.callbacks._receiver import Received, Rejected, forged, json_objects
from healthd.api.callbacks._twilio import outcome
from healthd.model import DeliveryOutcome

TYPE_PREFIX = "com.twilio.messaging.message."
BODY_HASH = "bodySHA256"


async def outcomes(request: web.Request, at: Received, signature: str) -> list[DeliveryOutcome]:
    """The verified batch's outcomes; `Rejected` before the body is read for anything else."""
    if BODY_HASH not in URL(at.url).query:
        raise Rejected(403, "unsigned", f"a JSON callback's URL must carry {BODY_HASH}")
    body = await request.text()
    token = at.integration.credentials["auth_token"].reveal()
    if not RequestValidator(token).validate(at.url, body, signature):
        raise forged()
    found = (_outcome(event, at) for event in json_objects(body, "CloudEvents"))
    return [o for o in found if o is not None]


def _outcome(event: dict[str, Any], at: Received) -> DeliveryOutcome | None:
    kind, data = event.get("type"), event.get("data")
    if not isinstance(kind, str) or not kind.startswith(TYPE_PREFIX) or not isinstance(data, dict):
        return None
    sid, status = data.get("messageSid"), data.get("messageStatus") or kind[len(TYPE_PREFIX) :]
    if not isinstance(sid, str) or not sid or not isinstance(status, str) or not status:
        return None
    code = data.get("errorCode")
    return outcome(at, sid, status, None if code in (None, "", 0, "0") else str(code))

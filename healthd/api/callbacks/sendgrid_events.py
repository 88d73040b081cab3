"""SendGrid's signed Event Webhook, verified by the sendgrid SDK's EventWebhook helper.

SendGrid POSTs a JSON array of events and signs `timestamp + body` with ECDSA P-256
(`X-Twilio-Email-Event-Webhook-Signature`, `...-Timestamp`); the integration's
`callback_public_key` is the verification key from its Mail Settings. A batch whose
timestamp is further than `callbacks.tolerance` from healthd's clock is refused even
when the signature holds: it is a replayed capture, not SendGrid.

Each event names its message (`sg_message_id`, one per recipient) and what happened:
delivered, bounce and dropped end a message; spamreport and unsubscribe are the
recipient's reactions; deferred and processed are on the way. Opens and clicks are not
delivery and are left out.
"""

from __future__ import annotations

import binascii
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from aiohttp import web
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader

from healthd.api.callbacks._receiver import (
    Received,
    Rejected,
    forged,
    json_objects,
    malformed,
    unsigned,
)
from healthd.model import Category, DeliveryOutcome, DeliveryStage

STAGES = {
    "delivered": DeliveryStage.FINAL,
    "bounce": DeliveryStage.FINAL,
    "dropped": DeliveryStage.FINAL,
    "spamreport": DeliveryStage.REACTION,
    "unsubscribe": DeliveryStage.REACTION,
    "group_unsubscribe": DeliveryStage.REACTION,
    "deferred": DeliveryStage.PENDING,
    "processed": DeliveryStage.PENDING,
}
# Bounces, drops, spam reports and unsubscribes are the audience's: DESIGN.md's recipient
# category (a bounce's SMTP code may say otherwise through the catalogue).
RECIPIENT = frozenset({"bounce", "dropped", "spamreport", "unsubscribe", "group_unsubscribe"})


class SendGridEventReceiver:
    provider: ClassVar[str] = "sendgrid"

    def __init__(self, tolerance: timedelta) -> None:
        self._tolerance = tolerance
        self._webhook = EventWebhook()
        self._keys: dict[str, Any] = {}  # the parsed key of each integration, made once

    async def outcomes(self, request: web.Request, at: Received) -> list[DeliveryOutcome]:
        signature = request.headers.get(EventWebhookHeader.SIGNATURE)
        timestamp = request.headers.get(EventWebhookHeader.TIMESTAMP)
        if not signature:
            raise unsigned(EventWebhookHeader.SIGNATURE)
        if not timestamp:
            raise unsigned(EventWebhookHeader.TIMESTAMP)
        key = self._key(at)
        self._check_time(timestamp, at.now)
        payload = await request.text()
        try:
            verified = self._webhook.verify_signature(payload, signature, timestamp, key)
        except (binascii.Error, ValueError):
            verified = False
        if not verified:
            raise forged()
        outcomes = (_outcome(event, at) for event in json_objects(payload, "event objects"))
        return [o for o in outcomes if o is not None]

    def _key(self, at: Received) -> Any:
        integration = at.integration
        if integration.callback_public_key is None:
            raise Rejected(
                403, "unverifiable", "this integration has no callback_public_key to verify with"
            )
        key = self._keys.get(integration.id)
        if key is None:
            key = self._keys[integration.id] = self._webhook.convert_public_key_to_ecdsa(
                integration.callback_public_key
            )
        return key

    def _check_time(self, timestamp: str, now: datetime) -> None:
        try:
            signed = datetime.fromtimestamp(int(timestamp), UTC)
        except (ValueError, OverflowError, OSError):
            raise malformed("the timestamp header is not a Unix time") from None
        if abs(now - signed) > self._tolerance:
            raise Rejected(
                403,
                "stale",
                f"the batch was signed at {signed.isoformat()}, further than"
                f" {self._tolerance.total_seconds():g} s from now",
            )


def _outcome(event: dict[str, Any], at: Received) -> DeliveryOutcome | None:
    name, message_id = event.get("event"), event.get("sg_message_id")
    stage = STAGES.get(name) if isinstance(name, str) else None
    if stage is None or not isinstance(message_id, str) or not message_id:
        return None
    status = event.get("status")
    code = status if name in ("bounce", "dropped") and isinstance(status, str) and status else None
    default = Category.RECIPIENT if name in RECIPIENT else None
    return DeliveryOutcome(
        integration_id=at.integration.id,
        message_id=message_id,
        status=str(name),
        stage=stage,
        category=at.category(code, default),
        provider_code=code,
        at=at.now,
    )

"""Twilio message status callbacks, verified by the twilio SDK's RequestValidator.

Twilio POSTs form fields (`MessageSid`, `MessageStatus`, `ErrorCode`, ...) to the message's
StatusCallback URL and signs the full URL it requested plus the sorted fields with the
account's auth token (`X-Twilio-Signature`, HMAC-SHA1). No callback comes for the first
status (queued or accepted); a receipt (delivered, undelivered with a 30XXX code) or a
failure found after the API accepted the message (failed with 21703 from a Messaging
Service) may come minutes or hours later.
"""

from __future__ import annotations

from typing import ClassVar

from aiohttp import web
from twilio.request_validator import RequestValidator

from healthd.api.callbacks._receiver import Received, forged, malformed, unsigned
from healthd.model import Category, DeliveryOutcome, DeliveryStage

SIGNATURE = "X-Twilio-Signature"
# The spec's message statuses (specs/twilio, message_enum_status) that end a message.
# `read` (WhatsApp) follows `delivered`: the ledger keeps it but counts the message once.
FINAL = frozenset({"delivered", "undelivered", "failed", "read", "canceled"})
# A message ended without success but with no code: whose problem it is, Twilio did not say.
FAILED = frozenset({"undelivered", "failed"})


class TwilioStatusReceiver:
    provider: ClassVar[str] = "twilio"

    async def outcomes(self, request: web.Request, at: Received) -> list[DeliveryOutcome]:
        signature = request.headers.get(SIGNATURE)
        if not signature:
            raise unsigned(SIGNATURE)
        form = await request.post()
        token = at.integration.credentials["auth_token"].reveal()
        if not RequestValidator(token).validate(at.url, form, signature):
            raise forged()
        sid, status = form.get("MessageSid"), form.get("MessageStatus")
        if not isinstance(sid, str) or not sid or not isinstance(status, str) or not status:
            raise malformed("a status callback needs MessageSid and MessageStatus")
        code = form.get("ErrorCode")
        code = code if isinstance(code, str) and code not in ("", "0") else None
        status = status.lower()
        default = Category.UNKNOWN if status in FAILED or code else None
        return [
            DeliveryOutcome(
                integration_id=at.integration.id,
                message_id=sid,
                status=status,
                stage=DeliveryStage.FINAL if status in FINAL else DeliveryStage.PENDING,
                category=at.category(code, default),
                provider_code=code,
                at=at.now,
            )
        ]

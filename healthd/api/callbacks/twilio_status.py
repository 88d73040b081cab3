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

from healthd.api.callbacks import twilio_events
from healthd.api.callbacks._receiver import Received, forged, malformed, unsigned
from healthd.api.callbacks._twilio import SIGNATURE, outcome
from healthd.model import DeliveryOutcome


class TwilioStatusReceiver:
    provider: ClassVar[str] = "twilio"

    async def outcomes(self, request: web.Request, at: Received) -> list[DeliveryOutcome]:
        signature = request.headers.get(SIGNATURE)
        if not signature:
            raise unsigned(SIGNATURE)
        if request.content_type == "application/json":
            return await twilio_events.outcomes(request, at, signature)
        form = await request.post()
        token = at.integration.credentials["auth_token"].reveal()
        if not RequestValidator(token).validate(at.url, form, signature):
            raise forged()
        sid, status = form.get("MessageSid"), form.get("MessageStatus")
        if not isinstance(sid, str) or not sid or not isinstance(status, str) or not status:
            raise malformed("a status callback needs MessageSid and MessageStatus")
        code = form.get("ErrorCode")
        return [
            outcome(
                at, sid, status, code if isinstance(code, str) and code not in ("", "0") else None
            )
        ]

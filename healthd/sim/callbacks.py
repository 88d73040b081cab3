"""The providers' side of delivery callbacks: signed requests as Twilio and SendGrid send them.

Twilio signs a status callback with the account's auth token over the URL it requests
and the sorted form fields (the twilio SDK's `RequestValidator.compute_signature`, the
same code healthd verifies with). An Event Streams webhook sink sends the same statuses
as a JSON array of CloudEvents: Twilio appends `bodySHA256` (the body's hex SHA-256) to
the sink's URL and signs that URL alone. SendGrid signs `timestamp + body` with the ECDSA P-256
key of the account's signed Event Webhook; `SendGridSigner` holds such a key pair and
gives out the public half as SendGrid's settings page shows it (base64 DER).

`forged` versions sign with the wrong secret, so tests and the demo exercise the
verification that must refuse them. `CallbackSender` posts the requests.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from twilio.request_validator import RequestValidator

TWILIO_SIGNATURE = "X-Twilio-Signature"
SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
TWILIO_EVENT_TYPE = "com.twilio.messaging.message."
TWILIO_EVENT_SCHEMA = "https://events-schemas.twilio.com/Messaging.MessageStatus/8"


@dataclass(frozen=True, slots=True)
class Signed:
    """One request body with the headers that sign it, and what the signer added to the
    URL's query (Twilio's `bodySHA256`)."""

    body: bytes
    headers: Mapping[str, str]
    query: Mapping[str, str] = field(default_factory=dict)

    def url(self, url: str) -> str:
        """`url` as this request is posted to it."""
        if not self.query:
            return url
        return url + ("&" if "?" in url else "?") + urlencode(self.query)


def twilio_status(
    url: str, auth_token: str, fields: Mapping[str, str], *, forged: bool = False
) -> Signed:
    """A Twilio status callback to `url` (the full URL Twilio requests), signed."""
    token = auth_token + "-not" if forged else auth_token
    signature = RequestValidator(token).compute_signature(url, dict(fields))
    return Signed(
        body=urlencode(fields).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            TWILIO_SIGNATURE: signature,
        },
    )


def twilio_fields(
    account_sid: str, message_sid: str, status: str, error_code: str | None = None
) -> dict[str, str]:
    """The fields of a status callback (PROVIDERS.md A7): no phone numbers needed here."""
    fields = {
        "ApiVersion": "2010-04-01",
        "AccountSid": account_sid,
        "MessageSid": message_sid,
        "SmsSid": message_sid,
        "MessageStatus": status,
        "SmsStatus": status,
    }
    if error_code is not None:
        fields["ErrorCode"] = error_code
    return fields


def twilio_events(
    url: str, auth_token: str, events: Sequence[Mapping[str, Any]], *, forged: bool = False
) -> Signed:
    """An Event Streams webhook sink's batch of CloudEvents to `url`, signed."""
    body = json.dumps(list(events), separators=(",", ":"))
    query = {"bodySHA256": hashlib.sha256(body.encode()).hexdigest()}
    token = auth_token + "-not" if forged else auth_token
    unsigned = Signed(body=body.encode(), headers={}, query=query)
    signature = RequestValidator(token).compute_signature(unsigned.url(url), {})
    return Signed(
        body=unsigned.body,
        headers={"Content-Type": "application/json", TWILIO_SIGNATURE: signature},
        query=query,
    )


def twilio_event(
    account_sid: str, message_sid: str, status: str, error_code: str | None = None
) -> dict[str, Any]:
    """One outbound message status event (`Messaging.MessageStatus`); no phone numbers."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    data: dict[str, Any] = {
        "messageSid": message_sid,
        "timestamp": now,
        "accountSid": account_sid,
        "eventName": f"{TWILIO_EVENT_TYPE}{status}",
        "apiVersion": "2010-04-01",
        "messageStatus": status.upper(),
    }
    if error_code is not None:
        data["errorCode"] = int(error_code)
    return {
        "specversion": "1.0",
        "type": f"{TWILIO_EVENT_TYPE}{status}",
        "source": f"/2010-04-01/Accounts/{account_sid}/Messages/{message_sid}.json",
        "id": "EZ" + hashlib.md5(f"{message_sid}:{status}".encode()).hexdigest(),
        "dataschema": TWILIO_EVENT_SCHEMA,
        "datacontenttype": "application/json",
        "time": now,
        "data": data,
    }


class SendGridSigner:
    """The key pair of one SendGrid account's signed Event Webhook."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._other = ec.generate_private_key(ec.SECP256R1())

    @property
    def public_key(self) -> str:
        der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    def events(
        self, events: Sequence[Mapping[str, Any]], timestamp: int, *, forged: bool = False
    ) -> Signed:
        body = json.dumps(list(events), separators=(",", ":"))
        key = self._other if forged else self._key
        signature = key.sign((str(timestamp) + body).encode(), ec.ECDSA(hashes.SHA256()))
        return Signed(
            body=body.encode(),
            headers={
                "Content-Type": "application/json",
                SENDGRID_SIGNATURE: base64.b64encode(signature).decode(),
                SENDGRID_TIMESTAMP: str(timestamp),
            },
        )


def sendgrid_event(
    message_id: str, event: str, timestamp: int, status: str | None = None
) -> dict[str, Any]:
    """One Event Webhook event (SendGrid's fields; the address is a placeholder)."""
    out: dict[str, Any] = {
        "email": "recipient@example.invalid",
        "timestamp": timestamp,
        "event": event,
        "sg_event_id": f"{message_id}-{event}",
        "sg_message_id": message_id,
    }
    if status is not None:
        out["status"] = status
        out["reason"] = f"{status} simulated"
        out["type"] = "bounce"
    return out


class CallbackSender:
    """Posts signed callbacks; each answer's status is returned."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def post(self, url: str, signed: Signed) -> int:
        target, headers = signed.url(url), dict(signed.headers)
        async with self._session.post(target, data=signed.body, headers=headers) as r:
            await r.read()
            return r.status


async def post_all(url: str, signed: Sequence[Signed]) -> dict[str, int]:
    """Posts each request to `url` in turn; returns how many got each answer status."""
    answers: dict[str, int] = {}
    async with aiohttp.ClientSession() as session:
        sender = CallbackSender(session)
        for one in signed:
            status = str(await sender.post(url, one))
            answers[status] = answers.get(status, 0) + 1
    return answers

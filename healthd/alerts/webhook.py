"""A tenant's notification webhook: the tenant's own failing integrations, as signed JSON.

Signature scheme (documented for receivers):

    X-Healthd-Timestamp: <unix seconds>
    X-Healthd-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>

Signing the timestamp with the body lets a receiver reject replays: `verify()` checks the
HMAC in constant time and, given `now`, that the timestamp is within `tolerance` seconds.
Deliveries are retried by the outbox, so a receiver may see one event more than once; the
body's `dedup_key` and `action` identify it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import aiohttp

from healthd.alerts import channels
from healthd.alerts._retry import is_transient, parse_retry_after
from healthd.alerts.settings import AlertingSettings
from healthd.clock import Clock, SystemClock
from healthd.errors import DeliveryError
from healthd.model import AlertEvent
from healthd.secrets import Secret

SIGNATURE_HEADER = "X-Healthd-Signature"
TIMESTAMP_HEADER = "X-Healthd-Timestamp"
DEFAULT_TOLERANCE = 300.0
_TIMEOUT = aiohttp.ClientTimeout(total=10)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    now: float | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> bool:
    """True when `signature` is ours for this timestamp and body (and fresh, given `now`)."""
    if now is not None:
        try:
            if abs(now - float(timestamp)) > tolerance:
                return False
        except ValueError:
            return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def build_body(tenant: str, event: AlertEvent) -> bytes:
    """The JSON a tenant receives: the event as `AlertEvent.to_dict()` plus the tenant."""
    return json.dumps({"tenant": tenant, **event.to_dict()}, sort_keys=True).encode()


class WebhookNotifier:
    """Posts events to one tenant's webhook; see `healthd.interfaces.Notifier`."""

    def __init__(
        self,
        tenant: str,
        url: str,
        secret: Secret,
        session: aiohttp.ClientSession,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.channel = channels.webhook(tenant)
        self._tenant = tenant
        self._url = url
        self._secret = secret
        self._session = session
        self._clock = clock or SystemClock()

    async def send(self, event: AlertEvent) -> None:
        body = build_body(self._tenant, event)
        timestamp = str(int(self._clock.now().timestamp()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret.reveal(), timestamp, body),
        }
        try:
            async with self._session.post(
                self._url, data=body, headers=headers, timeout=_TIMEOUT
            ) as response:
                if response.status < 300:
                    return
                text = (await response.text(errors="replace"))[:300]
                raise _status_error(self._tenant, response.status, text, response.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryError(
                f"cannot reach the webhook of tenant {self._tenant!r}: {type(exc).__name__}",
                permanent=False,
            ) from None

    async def close(self) -> None:
        """Nothing to release: the HTTP session is the daemon's, shared, and closed by it."""


def from_settings(
    settings: AlertingSettings, session: aiohttp.ClientSession, clock: Clock
) -> list[WebhookNotifier]:
    """The notifier table's row (`healthd.alerts.notifiers`): one notifier per tenant
    webhook, in tenant order."""
    return [
        WebhookNotifier(tenant, hook.url, hook.secret, session, clock=clock)
        for tenant, hook in sorted(settings.webhooks.items())
    ]


def _status_error(tenant: str, status: int, text: str, headers: Any) -> DeliveryError:
    detail = " ".join(text.split())
    return DeliveryError(
        f"webhook of tenant {tenant!r} answered {status}: {detail}".rstrip(": "),
        permanent=not is_transient(status),
        retry_after=parse_retry_after(headers),
    )

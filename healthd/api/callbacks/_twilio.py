"""What Twilio's two kinds of delivery callback share: the signature header and how a
message's status and error code become a ledger outcome."""

from __future__ import annotations

from healthd.api.callbacks._receiver import Received
from healthd.model import Category, DeliveryOutcome, DeliveryStage

SIGNATURE = "X-Twilio-Signature"
# The spec's message statuses (specs/twilio, message_enum_status) that end a message.
# `read` (WhatsApp) follows `delivered`: the ledger keeps it but counts the message once.
FINAL = frozenset({"delivered", "undelivered", "failed", "read", "canceled"})
# A message ended without success but with no code: whose problem it is, Twilio did not say.
FAILED = frozenset({"undelivered", "failed"})


def outcome(at: Received, sid: str, status: str, code: str | None) -> DeliveryOutcome:
    """One message's status as the ledger keeps it, whichever way Twilio sent it."""
    status = status.lower()
    default = Category.UNKNOWN if status in FAILED or code else None
    return DeliveryOutcome(
        integration_id=at.integration.id,
        message_id=sid,
        status=status,
        stage=DeliveryStage.FINAL if status in FINAL else DeliveryStage.PENDING,
        category=at.category(code, default),
        provider_code=code,
        at=at.now,
    )

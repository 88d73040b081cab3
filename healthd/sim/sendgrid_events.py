"""The SendGrid simulator's signed Event Webhook: events for the mail it accepted.

`POST /v3/mail/send` (202) keeps each recipient of the mail as one message, named as
SendGrid names it in events: `sg_message_id` is the answer's `X-Message-Id` plus a
per-recipient suffix. A test (or the demo) then asks the simulator to report them:

    POST /sendgrid-sim/events {"target": <API key>, "url": <healthd's callback URL>,
        "outcomes": ["delivered", "bounce", ...], "late": "bounce", "batch": 100,
        "replays": 0, "forged": 0, "stale": 0, "stale_by": 3600}

Each message not reported yet gets the next outcome of `outcomes` (round robin, default
all `delivered`), as the events SendGrid sends for it:
- `delivered`: processed, delivered; `bounce`: processed, bounce (SMTP status 5.1.1);
  `dropped`: dropped (SendGrid drops before processing, e.g. a suppressed address);
- `spamreport`, `unsubscribe`: processed, delivered, then the recipient's reaction;
- `deferred`: processed, deferred now; its final event, `late` (default `bounce`), comes
  with the next request, as a receiving server's late answer does.

The events go out in signed batches of `batch` events (ECDSA P-256 over `timestamp +
body`, `healthd.sim.callbacks.SendGridSigner`, one key pair per API key, its public half
served at `GET /v3/user/webhooks/event/settings/signed/{id}` as SendGrid does). Then the first
`replays` batches are posted again unchanged, `forged` batches signed with another key,
and `stale` batches signed correctly `stale_by` seconds in the past, so the receiver's
signature and timestamp checks are exercised. The answer counts healthd's statuses.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import cycle
from typing import Any

from healthd.sim.callbacks import SendGridSigner, post_all, sendgrid_event

EVENTS_PATH = "/sendgrid-sim/events"
OUTCOMES = frozenset({"delivered", "bounce", "dropped", "deferred", "spamreport", "unsubscribe"})
LATE = frozenset({"delivered", "bounce", "dropped"})
BOUNCE_STATUS = "5.1.1"
# Accepted messages kept per API key, oldest dropped first: the simulator stays bounded.
LIMIT = 100_000


class BadEventsRequest(ValueError):
    """The events request names an unknown outcome or a bad number; the message says which."""


@dataclass(slots=True)
class _Message:
    message_id: str
    late: str | None = None  # the final event still owed after a `deferred`


@dataclass(frozen=True, slots=True)
class EventsRequest:
    """What to send, read from the request body (`from_body` checks every field)."""

    target: str
    url: str
    outcomes: tuple[str, ...]
    late: str
    batch: int
    replays: int
    forged: int
    stale: int
    stale_by: int

    @classmethod
    def from_body(cls, body: Any) -> EventsRequest:
        if not isinstance(body, dict):
            raise BadEventsRequest("the body must be a JSON object")
        target, url = body.get("target"), body.get("url")
        if not isinstance(target, str) or not target or not isinstance(url, str) or not url:
            raise BadEventsRequest("'target' and 'url' must be non-empty strings")
        outcomes = body.get("outcomes", ["delivered"])
        if not isinstance(outcomes, list) or not outcomes or not set(outcomes) <= OUTCOMES:
            raise BadEventsRequest(f"'outcomes' must be a non-empty list of {sorted(OUTCOMES)}")
        late = body.get("late", "bounce")
        if late not in LATE:
            raise BadEventsRequest(f"'late' must be one of {sorted(LATE)}")
        return cls(
            target=target,
            url=url,
            outcomes=tuple(outcomes),
            late=late,
            batch=_count(body, "batch", 100, least=1),
            replays=_count(body, "replays", 0),
            forged=_count(body, "forged", 0),
            stale=_count(body, "stale", 0),
            stale_by=_count(body, "stale_by", 3600, least=1),
        )


def _count(body: dict[str, Any], name: str, default: int, least: int = 0) -> int:
    value = body.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise BadEventsRequest(f"{name!r} must be an integer of at least {least}")
    return value


class EventOutbox:
    """Per API key: the messages accepted and not reported yet, and the webhook's key pair."""

    def __init__(self, limit: int = LIMIT) -> None:
        self._limit = limit
        self._unreported: dict[str, deque[_Message]] = {}
        self._deferred: dict[str, list[_Message]] = {}
        self._signers: dict[str, SendGridSigner] = {}
        self._mails = 0

    def reset(self) -> None:
        self._unreported.clear()
        self._deferred.clear()
        self._signers.clear()

    def signer(self, key: str) -> SendGridSigner:
        signer = self._signers.get(key)
        if signer is None:
            signer = self._signers[key] = SendGridSigner()
        return signer

    def accept(self, key: str, recipients: int) -> str:
        """Keeps one message per recipient of an accepted mail; returns its X-Message-Id."""
        self._mails += 1
        x_message_id = hashlib.sha1(f"{key}:{self._mails}".encode()).hexdigest()[:22]
        queue = self._unreported.setdefault(key, deque(maxlen=self._limit))
        for n in range(recipients):
            queue.append(_Message(f"{x_message_id}.filter{n:04d}.{self._mails}.0"))
        return x_message_id

    def due(self, request: EventsRequest, now: int) -> list[dict[str, Any]]:
        """The events owed for `request.target` now: late finals first, then new messages."""
        events = [
            sendgrid_event(m.message_id, m.late, now, _status(m.late))
            for m in self._deferred.pop(request.target, [])
            if m.late is not None
        ]
        unreported = self._unreported.pop(request.target, deque())
        deferred: list[_Message] = []
        for message, outcome in zip(unreported, cycle(request.outcomes), strict=False):
            events += _events(message.message_id, outcome, now)
            if outcome == "deferred":
                message.late = request.late
                deferred.append(message)
        if deferred:
            self._deferred[request.target] = deferred
        return events


def _status(event: str) -> str | None:
    return BOUNCE_STATUS if event == "bounce" else None


def _events(message_id: str, outcome: str, now: int) -> Iterator[dict[str, Any]]:
    if outcome != "dropped":
        yield sendgrid_event(message_id, "processed", now)
    if outcome in ("spamreport", "unsubscribe"):
        yield sendgrid_event(message_id, "delivered", now)
    yield sendgrid_event(message_id, outcome, now, _status(outcome))


def _batches(events: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(events), size):
        yield events[start : start + size]


async def send_events(outbox: EventOutbox, request: EventsRequest) -> dict[str, Any]:
    """Posts what `request` asks for; returns how many requests and events went, and the
    answers healthd gave, by status."""
    now = int(time.time())
    signer = outbox.signer(request.target)
    events = outbox.due(request, now)
    signed = [signer.events(b, now) for b in _batches(events, request.batch)]
    signed += signed[: request.replays]
    for n in range(request.forged):
        bogus = [sendgrid_event(f"forged{n}.filter0000.0.0", "bounce", now, BOUNCE_STATUS)]
        signed.append(signer.events(bogus, now, forged=True))
    for n in range(request.stale):
        old = now - request.stale_by
        captured = [sendgrid_event(f"stale{n}.filter0000.0.0", "bounce", old, BOUNCE_STATUS)]
        signed.append(signer.events(captured, old))
    answers = await post_all(request.url, signed)
    return {"sent": len(signed), "events": len(events), "answers": answers}

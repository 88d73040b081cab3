"""SendGrid v3 as the email probe sees it: scopes, sender identities, domains, stats, mail send.

The target is the API key (the `Authorization: Bearer` value), so one simulator holds a
healthy account beside a revoked one. Bodies follow SendGrid's `ErrorResponse`
(`{"errors": [{"message", "field", "help"}]}`) and the published OpenAPI files; every
answer carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`
(epoch seconds), as the real API does.

Scenarios (params in brackets):
- `ok`: key with `mail.send`; the from-address (`from_email`, default sales@example.com)
  is a verified single sender and its domain is authenticated; quiet, clean stats.
- `missing_key`: 401 `authorization required` (also what any request without a key gets).
- `revoked_key`: 401 `The provided authorization grant is invalid, expired, or revoked`.
- `no_mail_send_scope`: the key lists read scopes only.
- `restricted_key`: a "Mail Send only" restricted key: scopes `["mail.send"]`, and every
  read endpoint answers 403 `access forbidden` [`read_status`: 401 to answer 401
  `authorization required` instead, SendGrid's answer to a key without the scope].
- `access_forbidden`: 403 `access forbidden` on every call (SendGrid's temporary block).
- `sender_unverified`: the single sender exists but was never confirmed; no domain.
  `POST /v3/mail/send` answers the real 403 sender-identity body.
- `domain_invalid_dns`: no single sender; the domain is authenticated but one DNS record
  (`record`: mail_cname | dkim1 | dkim2, default dkim1) does not resolve as expected.
- `high_bounces`, `blocks_spike`, `spam_reports`, `deferrals`: stats where that metric is a
  large share of requests (`rate` overrides the share; `daily_requests`, default 500).
- `rate_limited`: every call is over the limit: 429 `too many requests`, remaining 0.
- `low_rate_budget`: answers normally but reports few calls left (`remaining`, default 20).
- `server_error`: 500 `internal server error` on every call.
- `credits_exhausted`: the plan's email credits are used up: `GET /v3/user/credits` shows
  `remain` 0 and mail send answers 401 `Maximum credits exceeded` [`refuse_reads`: every
  other call answers that 401 too; `total`, default 100; `next_reset`, default tomorrow].
- `no_senders`: no verified single sender and no authenticated domain at all.
Rate limit: `limit` (default 600 per minute) for every scenario.

Mail accepted with 202 is kept, one message per recipient, for the signed Event Webhook
(`healthd.sim.sendgrid_events`): `GET /v3/user/webhooks/event/settings/signed/{id}` gives
the key's verification key and `POST /sendgrid-sim/events` (not a SendGrid API) posts the
events to healthd.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any

from aiohttp import web

from healthd.sim.base import ProviderSim, Scenario
from healthd.sim.sendgrid_events import (
    EVENTS_PATH,
    BadEventsRequest,
    EventOutbox,
    EventsRequest,
    send_events,
)

_WINDOW_SECONDS = 60
_DEFAULT_LIMIT = 600
_DEFAULT_FROM = "sales@example.com"

_REVOKED = "The provided authorization grant is invalid, expired, or revoked"
_NO_CREDITS = "Maximum credits exceeded"
_UNVERIFIED_FROM = (
    "The from address does not match a verified Sender Identity. Mail cannot be sent until "
    "this error is resolved. Visit https://sendgrid.com/docs/for-developers/sending-email/"
    "sender-identity/ to see the Sender Identity requirements"
)
_ALL_SCOPES = ["mail.send", "alerts.read", "stats.read", "whitelabel.read", "user.profile.read"]
_METRICS = (
    "blocks",
    "bounce_drops",
    "bounces",
    "clicks",
    "deferred",
    "delivered",
    "invalid_emails",
    "opens",
    "processed",
    "requests",
    "spam_report_drops",
    "spam_reports",
    "unique_clicks",
    "unique_opens",
    "unsubscribe_drops",
    "unsubscribes",
)
# Which metric each stats scenario inflates, and its default share of requests.
_SPIKES = {
    "high_bounces": ("bounces", 0.4),
    "blocks_spike": ("blocks", 0.12),
    "spam_reports": ("spam_reports", 0.01),
    "deferrals": ("deferred", 0.3),
}


class SendGridSim(ProviderSim):
    name = "sendgrid"
    scenarios = frozenset(
        {
            "ok",
            "missing_key",
            "revoked_key",
            "no_mail_send_scope",
            "restricted_key",
            "access_forbidden",
            "sender_unverified",
            "domain_invalid_dns",
            "high_bounces",
            "blocks_spike",
            "spam_reports",
            "deferrals",
            "rate_limited",
            "low_rate_budget",
            "server_error",
            "credits_exhausted",
            "no_senders",
        }
    )

    def __init__(self) -> None:
        super().__init__()
        self._windows: dict[str, tuple[int, int]] = {}
        self._outbox = EventOutbox()

    def reset(self) -> None:
        super().reset()
        self._windows.clear()
        self._outbox.reset()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v3/scopes", self.scopes),
            web.get("/v3/user/credits", self.credits),
            web.get("/v3/verified_senders", self.verified_senders),
            web.get("/v3/whitelabel/domains", self.domains),
            web.get("/v3/stats", self.stats),
            web.post("/v3/mail/send", self.mail_send),
            web.get("/v3/user/webhooks/event/settings/signed/{id}", self.webhook_key),
            web.post(EVENTS_PATH, self.send_events),
        ]

    async def scopes(self, request: web.Request) -> web.Response:
        return await self._serve(request, _scopes_body)

    async def credits(self, request: web.Request) -> web.Response:
        return await self._serve(request, _credits_body)

    async def verified_senders(self, request: web.Request) -> web.Response:
        return await self._serve(request, _senders_body)

    async def domains(self, request: web.Request) -> web.Response:
        return await self._serve(request, _domains_body)

    async def stats(self, request: web.Request) -> web.Response:
        return await self._serve(request, _stats_body)

    async def mail_send(self, request: web.Request) -> web.Response:
        response = await self._serve(request, _mail_send_answer)
        if response.status == 202:
            recipients = _recipients(await request.json())
            response.headers["X-Message-Id"] = self._outbox.accept(_bearer(request), recipients)
        return response

    async def webhook_key(self, request: web.Request) -> web.Response:
        """`GetSignedEventWebhook`: the public key that verifies the key's signed events."""
        public_key = self._outbox.signer(_bearer(request)).public_key

        async def answer(request: web.Request, sc: Scenario) -> _Answer:
            return 200, {"id": request.match_info.get("id", ""), "public_key": public_key}

        return await self._serve(request, answer)

    async def send_events(self, request: web.Request) -> web.Response:
        """Posts signed events for the mail accepted (`healthd.sim.sendgrid_events`)."""
        try:
            asked = EventsRequest.from_body(await request.json())
        except (json.JSONDecodeError, BadEventsRequest) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(await send_events(self._outbox, asked))

    async def _serve(self, request: web.Request, build: _Builder) -> web.Response:
        """Authenticate, apply the scenario's failure if any, then answer with `build`."""
        key = _bearer(request)
        sc = await self.delay(key)
        limit = int(sc.params.get("limit", _DEFAULT_LIMIT))
        remaining, reset = self._spend(key, limit)
        if sc.name == "low_rate_budget":
            remaining = min(remaining, int(sc.params.get("remaining", 20)))
        if sc.name == "rate_limited":
            remaining = 0
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(reset),
        }
        status, body = _failure(sc, key, request.path)
        if status is None:
            status, body = await build(request, sc)
        if body is None:
            return web.Response(status=status, headers=headers)
        return web.json_response(body, status=status, headers=headers)

    def _spend(self, key: str, limit: int) -> tuple[int, int]:
        """Count one call in the key's current one-minute window; (remaining, reset epoch)."""
        now = int(time.time())
        start = now - now % _WINDOW_SECONDS
        window, used = self._windows.get(key, (start, 0))
        if window != start:
            window, used = start, 0
        used += 1
        self._windows[key] = (window, used)
        return max(0, limit - used), window + _WINDOW_SECONDS


_Answer = tuple[int, Any]
_Builder = Callable[[web.Request, Scenario], Awaitable[_Answer]]


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    return header[len("Bearer ") :].strip() if header.startswith("Bearer ") else ""


def _errors(message: str, field: str | None = None) -> dict[str, Any]:
    return {"errors": [{"message": message, "field": field, "help": None}]}


def _failure(sc: Scenario, key: str, path: str) -> tuple[int | None, Any]:
    """The answer that replaces an endpoint's normal one in the failing scenarios."""
    if not key or sc.name == "missing_key":
        return 401, {"errors": [{"field": None, "message": "authorization required"}]}
    if sc.name == "revoked_key":
        return 401, _errors(_REVOKED)
    if sc.name == "rate_limited":
        return 429, {"errors": [{"field": None, "message": "too many requests"}]}
    if sc.name == "access_forbidden":
        return _FORBIDDEN
    if sc.name == "restricted_key" and path not in ("/v3/scopes", "/v3/mail/send"):
        if int(sc.params.get("read_status", 403)) == 401:
            return 401, {"errors": [{"field": None, "message": "authorization required"}]}
        return _FORBIDDEN
    if sc.name == "server_error":
        return 500, {"errors": [{"field": None, "message": "internal server error"}]}
    if sc.name == "credits_exhausted" and path != "/v3/user/credits":
        if path == "/v3/mail/send" or sc.params.get("refuse_reads"):
            return 401, _errors(_NO_CREDITS)
    return None, None


_FORBIDDEN = 403, {"errors": [{"field": None, "message": "access forbidden"}]}


def _from_email(sc: Scenario) -> str:
    return str(sc.params.get("from_email", _DEFAULT_FROM))


async def _scopes_body(request: web.Request, sc: Scenario) -> _Answer:
    if sc.name == "restricted_key":
        return 200, {"scopes": ["mail.send"]}
    if sc.name == "no_mail_send_scope":
        return 200, {"scopes": [s for s in _ALL_SCOPES if s != "mail.send"]}
    return 200, {"scopes": _ALL_SCOPES}


async def _credits_body(request: web.Request, sc: Scenario) -> _Answer:
    """`ListCredit`: a monthly paid plan with credits left, or a used-up free plan."""
    today = date.today()
    if sc.name != "credits_exhausted":
        return 200, {
            "remain": 38_450,
            "total": 50_000,
            "overage": 0,
            "used": 11_550,
            "last_reset": today.replace(day=1).isoformat(),
            "next_reset": (today.replace(day=1) + timedelta(days=32)).replace(day=1).isoformat(),
            "reset_frequency": "monthly",
        }
    total = int(sc.params.get("total", 100))
    return 200, {
        "remain": 0,
        "total": total,
        "overage": 0,
        "used": total,
        "last_reset": today.isoformat(),
        "next_reset": str(sc.params.get("next_reset", (today + timedelta(days=1)).isoformat())),
        "reset_frequency": "daily",
    }


async def _senders_body(request: web.Request, sc: Scenario) -> _Answer:
    if sc.name in ("domain_invalid_dns", "no_senders"):
        return 200, {"results": []}
    email = _from_email(sc)
    sender = {
        "id": 1234,
        "nickname": "Sales",
        "from_email": email,
        "from_name": "Sales",
        "reply_to": email,
        "reply_to_name": "Sales",
        "address": "1234 Fake St.",
        "address2": "",
        "state": "CA",
        "city": "San Francisco",
        "country": "USA",
        "zip": "94105",
        "verified": sc.name != "sender_unverified",
        "locked": False,
    }
    return 200, {"results": [sender]}


async def _domains_body(request: web.Request, sc: Scenario) -> _Answer:
    """A bare JSON array, as `ListAuthenticatedDomain` answers; `domain=` filters it."""
    if sc.name in ("sender_unverified", "no_senders"):
        return 200, []
    name = _from_email(sc).rpartition("@")[2]
    bad = str(sc.params.get("record", "dkim1")) if sc.name == "domain_invalid_dns" else None
    records = {
        "mail_cname": ("cname", f"em123.{name}", "u7.wl.sendgrid.net"),
        "dkim1": ("cname", f"s1._domainkey.{name}", "s1.domainkey.u7.wl.sendgrid.net"),
        "dkim2": ("cname", f"s2._domainkey.{name}", "s2.domainkey.u7.wl.sendgrid.net"),
    }
    dns = {
        key: {"valid": key != bad, "type": kind, "host": host, "data": data}
        for key, (kind, host, data) in records.items()
    }
    domain = {
        "id": 45373692,
        "user_id": 66036447,
        "subdomain": "em123",
        "domain": name,
        "username": "crm",
        "ips": [],
        "custom_spf": False,
        "default": True,
        "legacy": False,
        "automatic_security": True,
        "valid": bad is None,
        "dns": dns,
    }
    wanted = request.query.get("domain")
    return 200, [domain] if wanted in (None, "", name) else []


async def _stats_body(request: web.Request, sc: Scenario) -> _Answer:
    """One entry per day from `start_date` to `end_date` (default: start plus six days)."""
    try:
        start = date.fromisoformat(request.query["start_date"])
        end_text = request.query.get("end_date")
        end = date.fromisoformat(end_text) if end_text else start + timedelta(days=6)
    except (KeyError, ValueError):
        return 400, _errors("start_date is required in YYYY-MM-DD format", "start_date")
    per_day = int(sc.params.get("daily_requests", 500))
    spiked, share = _SPIKES.get(sc.name, (None, 0.0))
    share = float(sc.params.get("rate", share))
    days = []
    for offset in range((end - start).days + 1):
        metrics = dict.fromkeys(_METRICS, 0)
        metrics.update(
            requests=per_day,
            processed=per_day,
            bounces=per_day // 100,
            blocks=per_day // 500,
            deferred=per_day // 100,
        )
        if spiked is not None:
            metrics[spiked] = int(per_day * share)
        metrics["delivered"] = max(0, per_day - metrics["bounces"] - metrics["blocks"])
        day = (start + timedelta(days=offset)).isoformat()
        days.append({"date": day, "stats": [{"metrics": metrics}]})
    return 200, days


async def _mail_send_answer(request: web.Request, sc: Scenario) -> _Answer:
    """202 with no body; 200 in sandbox mode; the real 403 for an unverified from-address."""
    if sc.name == "no_mail_send_scope":
        return _FORBIDDEN
    if sc.name in ("sender_unverified", "domain_invalid_dns", "no_senders"):
        return 403, _errors(_UNVERIFIED_FROM, "from")
    try:
        payload = await request.json()
    except ValueError:
        return 400, _errors("invalid request")
    sandbox = (payload.get("mail_settings") or {}).get("sandbox_mode") or {}
    return (200, None) if sandbox.get("enable") else (202, None)


def _recipients(payload: Any) -> int:
    """How many addresses a mail goes to: every to, cc and bcc of every personalization."""
    personalizations = payload.get("personalizations") if isinstance(payload, dict) else None
    return sum(
        len(p.get(field) or [])
        for p in personalizations or []
        if isinstance(p, dict)
        for field in ("to", "cc", "bcc")
    )

"""The PagerDuty Events API v2 simulator (PROVIDERS.md D1).

`POST /v2/enqueue` and `POST /v2/change/enqueue` validate like the real API: a body that is
not a JSON object is 400 `Unrecognized object`; a field error is 400 `invalid event` with
one message per problem in `errors`; an accepted event is 202 with its `dedup_key` (a new one
for a trigger without). The scenario target is the routing key, so one key can be throttled
while another is accepted.

Scenarios: `rate_limited` (429; PagerDuty documents no body for it, so clients must not read
one), `server_error` (500 with the error envelope), `down` (the connection is closed without
an answer), plus the common `slow` / `hanging`.

Accepted events are kept in order for tests (`/_sim/pagerduty/events`) with the routing key
cut to its last 4 characters, and fold into an incident model (`/_sim/pagerduty/incidents`)
that follows PagerDuty's dedup rules: a trigger opens the (routing key, dedup key) alert if
none is open; acknowledge/resolve apply only to an open alert, else they are dropped; after a
resolve the same dedup key opens a new alert.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from aiohttp import web

from healthd.sim.base import ANY, ProviderSim, drop_connection

ROUTING_KEY_LENGTH = 32
SUMMARY_MAX = 1024
DEDUP_KEY_MAX = 255
EVENT_ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "warning", "error", "info")
ENQUEUE = "/v2/enqueue"
CHANGE_ENQUEUE = "/v2/change/enqueue"


def _one_of(values: tuple[str, ...]) -> str:
    quoted = [f"'{v}'" for v in values]
    return f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def _text(value: Any) -> str | None:
    """The value if it is a non-blank string, else None (PagerDuty's "missing or blank")."""
    return value if isinstance(value, str) and value.strip() else None


def _blank(value: Any) -> bool:
    return _text(value) is None


# Error wording as the live API words it: "'payload.severity' is missing or blank" (seen in
# SigNoz issue 9536), "Length of 'routing_key' is incorrect (should be 32 characters)" (D1).
def _missing(field: str) -> str:
    return f"'{field}' is missing or blank"


def _routing_key_errors(body: dict[str, Any]) -> list[str]:
    key = _text(body.get("routing_key"))
    if key is None:
        return [_missing("routing_key")]
    if len(key) != ROUTING_KEY_LENGTH:
        return [f"Length of 'routing_key' is incorrect (should be {ROUTING_KEY_LENGTH} characters)"]
    return []


def _attachment_errors(body: dict[str, Any]) -> list[str]:
    """`links[].href` and `images[].src` are required in each entry."""
    errors: list[str] = []
    for field, required in (("links", "href"), ("images", "src")):
        items = body.get(field)
        if items is None:
            continue
        if not isinstance(items, list):
            errors.append(f"'{field}' is invalid (must be an array)")
            continue
        for i, item in enumerate(items):
            if not isinstance(item, dict) or _blank(item.get(required)):
                errors.append(_missing(f"{field}[{i}].{required}"))
    return errors


def _payload(body: dict[str, Any], errors: list[str]) -> dict[str, Any] | None:
    payload = body.get("payload")
    if payload is None:
        errors.append(_missing("payload"))
        return None
    if not isinstance(payload, dict):
        errors.append("'payload' is invalid (must be an object)")
        return None
    return payload


def _summary_errors(payload: dict[str, Any]) -> list[str]:
    summary = _text(payload.get("summary"))
    if summary is None:
        return [_missing("payload.summary")]
    if len(summary) > SUMMARY_MAX:
        return [f"Length of 'payload.summary' is too long (should be at most {SUMMARY_MAX})"]
    return []


def validate_event(body: dict[str, Any]) -> list[str]:
    """Every reason the Events API would reject this `/v2/enqueue` body; [] if valid."""
    errors = _routing_key_errors(body)
    action = body.get("event_action")
    if _blank(action):
        errors.append(_missing("event_action"))
    elif action not in EVENT_ACTIONS:
        errors.append(f"'event_action' is invalid (must be one of {_one_of(EVENT_ACTIONS)})")
    dedup_key = body.get("dedup_key")
    if dedup_key is not None and not isinstance(dedup_key, str):
        errors.append("'dedup_key' is invalid (must be a string)")
    elif isinstance(dedup_key, str) and len(dedup_key) > DEDUP_KEY_MAX:
        errors.append(f"Length of 'dedup_key' is too long (should be at most {DEDUP_KEY_MAX})")
    elif action in ("acknowledge", "resolve") and _blank(dedup_key):
        errors.append(_missing("dedup_key"))
    if action == "trigger":
        payload = _payload(body, errors)
        if payload is not None:
            errors += _summary_errors(payload)
            if _blank(payload.get("source")):
                errors.append(_missing("payload.source"))
            severity = payload.get("severity")
            if _blank(severity):
                errors.append(_missing("payload.severity"))
            elif severity not in SEVERITIES:
                errors.append(
                    f"'payload.severity' is invalid (must be one of {_one_of(SEVERITIES)})"
                )
    return errors + _attachment_errors(body)


def validate_change_event(body: dict[str, Any]) -> list[str]:
    """Every reason the Events API would reject this `/v2/change/enqueue` body; [] if valid."""
    errors = _routing_key_errors(body)
    payload = _payload(body, errors)
    if payload is not None:
        errors += _summary_errors(payload)
    return errors + _attachment_errors(body)


def _reply(status: int, short: str, message: str, errors: list[str] | None = None) -> web.Response:
    body: dict[str, Any] = {"status": short, "message": message}
    if errors is not None:
        body["errors"] = errors
    return web.json_response(body, status=status)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def mask_key(routing_key: str) -> str:
    """What the simulator shows of a routing key anywhere: its last 4 characters."""
    return routing_key[-4:]


@dataclass(slots=True)
class Incident:
    routing_key: str
    dedup_key: str
    summary: str
    opened_at: str
    status: str = "triggered"
    trigger_count: int = 1
    acknowledge_count: int = 0
    resolve_count: int = 0
    resolved_at: str | None = None

    @property
    def open(self) -> bool:
        return self.status != "resolved"

    def as_dict(self) -> dict[str, Any]:
        return {
            "routing_key": mask_key(self.routing_key),
            "dedup_key": self.dedup_key,
            "summary": self.summary,
            "status": self.status,
            "trigger_count": self.trigger_count,
            "acknowledge_count": self.acknowledge_count,
            "resolve_count": self.resolve_count,
            "opened_at": self.opened_at,
            "resolved_at": self.resolved_at,
        }


class PagerDutySim(ProviderSim):
    name: ClassVar[str] = "pagerduty"
    scenarios: ClassVar[frozenset[str]] = frozenset({"ok", "rate_limited", "server_error", "down"})

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []
        self._incidents: list[Incident] = []
        self.rejected = 0
        self.throttled = 0
        self.server_errors = 0

    def clear(self) -> None:
        """Forget accepted events and incidents (counters stay until `reset`)."""
        self.events.clear()
        self._incidents.clear()

    def reset(self) -> None:
        super().reset()
        self.clear()
        self.rejected = self.throttled = self.server_errors = 0

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        # Targets are routing keys: show only their last 4 characters.
        info["active"] = {(t if t == ANY else mask_key(t)): s for t, s in info["active"].items()}
        info.update(
            accepted=len(self.events),
            rejected=self.rejected,
            throttled=self.throttled,
            server_errors=self.server_errors,
            open_incidents=sum(i.open for i in self._incidents),
        )
        return info

    def incidents(self) -> list[dict[str, Any]]:
        return [i.as_dict() for i in self._incidents]

    def routes(self) -> list[web.RouteDef]:
        return [web.post(ENQUEUE, self._enqueue), web.post(CHANGE_ENQUEUE, self._change_enqueue)]

    async def _enqueue(self, request: web.Request) -> web.Response:
        return await self._receive(request, change=False)

    async def _change_enqueue(self, request: web.Request) -> web.Response:
        return await self._receive(request, change=True)

    async def _receive(self, request: web.Request, *, change: bool) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        key = body.get("routing_key") if isinstance(body, dict) else None
        sc = await self.delay(key if isinstance(key, str) and key else ANY)
        if sc.name == "down":
            return drop_connection(request)
        if sc.name == "rate_limited":
            self.throttled += 1
            return _reply(
                429, "throttle event", "Requests for this service are arriving too quickly"
            )
        if sc.name == "server_error":
            self.server_errors += 1
            return _reply(500, "error", "Internal Server Error", ["Simulated server error"])
        if not isinstance(body, dict):
            self.rejected += 1
            return _reply(
                400,
                "Unrecognized object",
                "Event object format is unrecognized",
                ["JSON parse error"],
            )
        errors = validate_change_event(body) if change else validate_event(body)
        if errors:
            self.rejected += 1
            return _reply(400, "invalid event", "Event object is invalid", errors)
        if change:
            self._record(request.path, body, None)
            return _reply(202, "success", "Change event processed")
        dedup_key = body.get("dedup_key") or uuid.uuid4().hex
        self._record(request.path, body, dedup_key)
        self._apply(body, dedup_key)
        return web.json_response(
            {"status": "success", "message": "Event processed", "dedup_key": dedup_key}, status=202
        )

    def _record(self, path: str, body: dict[str, Any], dedup_key: str | None) -> None:
        masked = {**body, "routing_key": mask_key(body["routing_key"])}
        self.events.append(
            {"path": path, "received_at": _now(), "dedup_key": dedup_key, "body": masked}
        )

    def _apply(self, body: dict[str, Any], dedup_key: str) -> None:
        key, action = body["routing_key"], body["event_action"]
        same = [i for i in self._incidents if (i.routing_key, i.dedup_key) == (key, dedup_key)]
        current = next((i for i in reversed(same) if i.open), None)
        if action == "trigger":
            if current is None:
                summary = body["payload"]["summary"]
                self._incidents.append(Incident(key, dedup_key, summary, _now()))
            else:
                current.trigger_count += 1
        elif current is not None and action == "acknowledge":
            current.status = "acknowledged"
            current.acknowledge_count += 1
        elif current is not None and action == "resolve":
            current.status = "resolved"
            current.resolve_count += 1
            current.resolved_at = _now()
        elif action == "resolve" and same:
            # PagerDuty drops it; counting it on the last alert lets tests see a double resolve.
            same[-1].resolve_count += 1

"""The iMessage bridge simulator: a BlueBubbles-server-style REST API (PROVIDERS.md E1).

Several bridges share one server. A bridge's base URL is `<sim>/bridges/<name>` and its
scenario target is `<name>`; the bare `/api/v1/...` paths are the bridge named `default`.

Every answer uses BlueBubbles' envelope: success `{"status": 200, "message", "data"}`, error
`{"status", "message", "error": {"type", "message"}}`. Auth is BlueBubbles' middleware: the
query parameter `guid`, `password` or `token` (the first present wins) must equal the server
password, `sim-bridge-password` unless the target's scenario carries `params.password`.

Scenarios, applied to every endpoint of the target, in this order:

* `offline`: the connection is closed without an HTTP answer. A powered-off Mac behind a
  load balancer or proxy looks like this (the proxy accepts, then hangs up); a Mac that is
  gone entirely would refuse the connection, which tests get by pointing at a closed port.
* `html`: 200 with an HTML page (a captive portal or proxy error page), before auth.
* `auth_fail`: 401 whatever password is sent (the server password was changed).
* `server_error`: 500 with a `Server Error` envelope.
* `truncated`: 200 whose JSON body is cut off halfway (the Content-Length matches).
* `signed_out`: `server/info` has `detected_imessage: null` (no iMessage account in chat.db).
* `helper_disconnected`: `private_api: true` but `helper_connected: false`.
* `backlog`: `message/query` leads with `undelivered` (default 5) outgoing messages that
  are `age_seconds` (default 900) old and not delivered, and `message/schedule` lists
  `scheduled_errors` (default 2) scheduled messages in `error`.

Times are the real wall clock in epoch milliseconds, as the Mac would report them.

`describe()` counts each target's `server/info` requests (`info_requests`): a probe asks
it once, so tests count a bridge's probes there, whichever replica sent them.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from typing import Any, ClassVar

from aiohttp import web

from healthd.sim.base import ProviderSim, Scenario, drop_connection

DEFAULT_TARGET = "default"
DEFAULT_PASSWORD = "sim-bridge-password"
# BlueBubbles' message/query caps `limit` at 1000 and defaults to 100.
QUERY_LIMIT_DEFAULT = 100
QUERY_LIMIT_MAX = 1000
# Delivered messages every healthy bridge reports: (seconds ago created, seconds to deliver).
RECENT_DELIVERED = ((60, 1.5), (180, 2.0), (600, 1.0))

HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    "<body><h1>Bad Gateway</h1><p>The upstream server is not responding.</p></body></html>"
)

# Default messages of BlueBubbles' responses (responses/success.ts, responses/errors.ts).
SUCCESS = "Success"
BAD_REQUEST_MESSAGE = "You've made a bad request! Please check your request params & body"
SERVER_ERROR_MESSAGE = "The server has encountered an error"
AUTH_ERROR = "Authentication Error"
SERVER_ERROR = "Server Error"
UNAUTHORIZED_MESSAGE = "You are not authorized to access this resource"
AUTH_PARAMS = ("guid", "password", "token")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _error(status: int, message: str, error_type: str, error_message: str) -> web.Response:
    body = {
        "status": status,
        "message": message,
        "error": {"type": error_type, "message": error_message},
    }
    return web.json_response(body, status=status)


def _guid(target: str, kind: str, n: int) -> str:
    """Stable per bridge, so repeated queries list the same messages."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"sim-bridge/{target}/{kind}/{n}")).upper()


def _message(target: str, n: int, created_ms: int, delivered_ms: int | None) -> dict[str, Any]:
    return {
        "guid": _guid(target, "message", n),
        "text": f"Simulated message {n}",
        "isFromMe": True,
        "error": 0,
        "isDelivered": delivered_ms is not None,
        "dateCreated": created_ms,
        "dateDelivered": delivered_ms,
        "dateRead": None,
    }


def _scheduled(n: int, status: str, scheduled_ms: int, error: str | None = None) -> dict[str, Any]:
    return {
        "id": n,
        "type": "send-message",
        "payload": {
            "chatGuid": f"iMessage;-;+1555010{n:04d}",
            "message": "Reminder",
            "method": "apple-script",
        },
        "scheduledFor": scheduled_ms,
        "schedule": {"type": "once"},
        "status": status,
        "error": error,
        "sentAt": scheduled_ms if status == "complete" else None,
        "created": scheduled_ms - 86_400_000,
    }


class BridgeSim(ProviderSim):
    name: ClassVar[str] = "imessage_bridge"
    scenarios: ClassVar[frozenset[str]] = frozenset(
        {
            "ok",
            "offline",
            "signed_out",
            "helper_disconnected",
            "backlog",
            "auth_fail",
            "html",
            "truncated",
            "server_error",
        }
    )
    secret_params: ClassVar[frozenset[str]] = frozenset({"password"})

    def __init__(self) -> None:
        super().__init__()
        self.info_requests: Counter[str] = Counter()

    def reset(self) -> None:
        super().reset()
        self.info_requests.clear()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "info_requests": dict(self.info_requests)}

    def routes(self) -> list[web.RouteDef]:
        defs: list[web.RouteDef] = []
        for prefix in ("", "/bridges/{target}"):
            api = f"{prefix}/api/v1"
            defs += [
                web.get(f"{api}/ping", self._ping),
                web.get(f"{api}/server/info", self._server_info),
                web.post(f"{api}/message/query", self._message_query),
                web.get(f"{api}/message/schedule", self._message_schedule),
            ]
        return defs

    async def _gate(self, request: web.Request) -> Scenario | web.Response:
        """What every endpoint does first: latency, the failure scenarios, then auth."""
        sc = await self.delay(request.match_info.get("target", DEFAULT_TARGET))
        if sc.name == "offline":
            return drop_connection(request)
        if sc.name == "html":
            return web.Response(text=HTML_PAGE, content_type="text/html")
        sent = next((request.query[k] for k in AUTH_PARAMS if k in request.query), None)
        if sent is None:
            return _error(401, UNAUTHORIZED_MESSAGE, AUTH_ERROR, "Missing server password!")
        expected = str(sc.params.get("password", DEFAULT_PASSWORD))
        if sc.name == "auth_fail" or sent.strip() != expected:
            return _error(401, UNAUTHORIZED_MESSAGE, AUTH_ERROR, "Unauthorized")
        if sc.name == "server_error":
            return _error(500, SERVER_ERROR_MESSAGE, SERVER_ERROR, "Simulated server error")
        return sc

    @staticmethod
    def _reply(sc: Scenario, message: str, data: Any, **extra: Any) -> web.Response:
        text = json.dumps({"status": 200, "message": message, "data": data, **extra})
        if sc.name == "truncated":
            text = text[: len(text) // 2]
        return web.Response(text=text, content_type="application/json")

    async def _ping(self, request: web.Request) -> web.Response:
        sc = await self._gate(request)
        if isinstance(sc, web.Response):
            return sc
        return self._reply(sc, "Ping received!", "pong")

    async def _server_info(self, request: web.Request) -> web.Response:
        target = request.match_info.get("target", DEFAULT_TARGET)
        self.info_requests[target] += 1
        sc = await self._gate(request)
        if isinstance(sc, web.Response):
            return sc
        account = f"bridge-{target}@example.com"
        info = {
            "computer_id": f"healthd-sim@{target}",
            "os_version": "14.6.1",
            "server_version": "1.9.9",
            "private_api": True,
            "proxy_service": "lan-url",
            "helper_connected": sc.name != "helper_disconnected",
            "detected_icloud": account,
            "detected_imessage": None if sc.name == "signed_out" else account,
            "macos_time_sync": None,
            "local_ipv4s": ["192.0.2.10"],
            "local_ipv6s": [],
        }
        return self._reply(sc, SUCCESS, info)

    async def _message_query(self, request: web.Request) -> web.Response:
        sc = await self._gate(request)
        if isinstance(sc, web.Response):
            return sc
        try:
            query = await request.json() if request.can_read_body else {}
        except json.JSONDecodeError:
            query = None
        limit = query.get("limit", QUERY_LIMIT_DEFAULT) if isinstance(query, dict) else None
        if not isinstance(limit, int) or not 0 < limit <= QUERY_LIMIT_MAX:
            return _error(
                400, BAD_REQUEST_MESSAGE, "Validation Error", "Invalid query body or limit"
            )
        target = request.match_info.get("target", DEFAULT_TARGET)
        now = _now_ms()
        messages = [
            _message(target, n, now - int(ago * 1000), now - int(ago * 1000) + int(took * 1000))
            for n, (ago, took) in enumerate(RECENT_DELIVERED)
        ]
        if sc.name == "backlog":
            age_ms = int(float(sc.params.get("age_seconds", 900)) * 1000)
            count = int(sc.params.get("undelivered", 5))
            base = len(messages)
            messages += [
                _message(target, base + i, now - age_ms - i * 1000, None) for i in range(count)
            ]
        # BlueBubbles sorts DESC by dateCreated unless asked otherwise.
        messages.sort(key=lambda m: m["dateCreated"], reverse=True)
        page = messages[:limit]
        metadata = {"offset": 0, "limit": limit, "total": len(messages), "count": len(page)}
        return self._reply(sc, SUCCESS, page, metadata=metadata)

    async def _message_schedule(self, request: web.Request) -> web.Response:
        sc = await self._gate(request)
        if isinstance(sc, web.Response):
            return sc
        now = _now_ms()
        scheduled = [
            _scheduled(1, "complete", now - 600_000),
            _scheduled(2, "pending", now + 3_600_000),
        ]
        if sc.name == "backlog":
            age_ms = int(float(sc.params.get("age_seconds", 900)) * 1000)
            for i in range(int(sc.params.get("scheduled_errors", 2))):
                scheduled.append(_scheduled(3 + i, "error", now - age_ms, "Failed to send message"))
        return self._reply(sc, SUCCESS, scheduled)

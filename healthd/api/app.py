"""The HTTP listener: /metrics, /healthz, /readyz, the status API under /api/v1, /openapi.json.

aiohttp's server rather than Starlette: the daemon already runs on aiohttp, and one
library for both the probing client and the listener keeps one event loop and no ASGI
server to configure. Errors are RFC 9457 problem documents; a healthd error maps to a
4xx with its own message, anything else to a 500 that says nothing about internals.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from aiohttp import web

from healthd.api.auth import Principal, TokenTable
from healthd.api.openapi import openapi_document
from healthd.catalog import Catalog
from healthd.config import ApiConfig
from healthd.errors import IntegrationNotFound, NotFoundError
from healthd.interfaces import Store
from healthd.metrics import MetricsEndpoint
from healthd.model import Integration, Status
from healthd.runner import Runner, probe_deadline

log = structlog.get_logger("healthd.api")

PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal", Principal)
PROBLEM = "application/problem+json"
PUBLIC_PATHS = {"/healthz", "/readyz", "/metrics", "/openapi.json"}


def problem(status: int, detail: str, *, headers: Mapping[str, str] | None = None) -> web.Response:
    body = {
        "type": "about:blank",
        "title": _reason(status),
        "status": status,
        "detail": detail,
    }
    return web.Response(status=status, text=json.dumps(body), content_type=PROBLEM, headers=headers)


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class RateLimiter:
    """Live checks per principal per minute (sliding window), to spare providers."""

    def __init__(self, per_minute: int, now: Callable[[], float] = time.monotonic) -> None:
        self._limit = per_minute
        self._now = now
        self._hits: dict[str, deque[float]] = defaultdict(deque)

    def retry_after(self, key: str) -> float | None:
        """None if allowed (and counted); else seconds until the next call is allowed."""
        now = self._now()
        hits = self._hits[key]
        while hits and now - hits[0] >= 60:
            hits.popleft()
        if len(hits) >= self._limit:
            return 60 - (now - hits[0])
        hits.append(now)
        return None


class Api:
    def __init__(
        self,
        *,
        runner: Runner,
        store: Store,
        catalog: Catalog,
        metrics: MetricsEndpoint,
        config: ApiConfig,
        ready: Callable[[], bool],
    ) -> None:
        self.runner = runner
        self.store = store
        self.catalog = catalog
        self.metrics = metrics
        self.config = config
        self.tokens = TokenTable(config.tokens)
        self.ready = ready
        self.limiter = RateLimiter(config.check_rate_limit)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors, self._auth])
        app.add_routes(
            [
                web.get("/healthz", self.healthz),
                web.get("/readyz", self.readyz),
                web.get("/metrics", self.metrics_handler),
                web.get("/openapi.json", self.openapi),
                web.get("/api/v1/integrations", self.list_integrations),
                web.get("/api/v1/integrations/{id}", self.get_integration),
                web.post("/api/v1/integrations/{id}/check", self.check_integration),
                web.post("/api/v1/tenants/{tenant}/check", self.check_tenant),
                web.get("/api/v1/errors/{provider}/{code}", self.explain),
                web.get("/api/v1/incidents", self.incidents),
            ]
        )
        return app

    # -- middleware -------------------------------------------------------------------

    @web.middleware
    async def _errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except NotFoundError as exc:
            return problem(404, str(exc))
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return problem(exc.status, exc.text or exc.reason, headers=_retry_header(exc))
        except Exception as exc:
            log.error("api_error", path=request.path, error_type=type(exc).__name__)
            return problem(500, "internal error; see healthd's log")

    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path in PUBLIC_PATHS and not self._needs_token(request.path):
            return await handler(request)
        principal = self.tokens.authenticate(request.headers.get("Authorization"))
        if principal is None:
            return problem(
                401,
                "a valid bearer token is required (Authorization: Bearer <token>)",
                headers={"WWW-Authenticate": 'Bearer realm="healthd"'},
            )
        request[PRINCIPAL] = principal
        return await handler(request)

    def _needs_token(self, path: str) -> bool:
        if path == "/metrics":
            return self.config.metrics_require_token
        if path in ("/healthz", "/readyz"):
            return self.config.health_require_token
        return False

    # -- health and metrics -----------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        if self.ready():
            return web.json_response({"status": "ready"})
        return problem(503, "healthd is starting or stopping")

    async def metrics_handler(self, request: web.Request) -> web.Response:
        body = await self.metrics.render()
        return web.Response(
            body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
        )

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_document())

    # -- status API -------------------------------------------------------------------

    def _visible(self, request: web.Request) -> list[Integration]:
        principal = request[PRINCIPAL]
        return [i for i in self.runner.integrations.values() if principal.may_see(i.tenant)]

    def _one(self, request: web.Request, integration_id: str) -> Integration:
        integration = self.runner.integrations.get(integration_id)
        if integration is None or not request[PRINCIPAL].may_see(integration.tenant):
            raise IntegrationNotFound(integration_id)
        return integration

    async def list_integrations(self, request: web.Request) -> web.Response:
        q = request.query
        unknown = set(q) - {"tenant", "provider", "status"}
        if unknown:
            raise web.HTTPBadRequest(text=f"unknown query parameter {sorted(unknown)[0]!r}")
        status = q.get("status")
        if status is not None and status not in {s.value for s in Status}:
            raise web.HTTPBadRequest(
                text=f"status must be one of {', '.join(s.value for s in Status)}, not {status!r}"
            )
        items = [
            self.view(i)
            for i in self._visible(request)
            if q.get("tenant") in (None, i.tenant) and q.get("provider") in (None, i.provider)
        ]
        if status is not None:
            items = [v for v in items if v["status"] == status]
        return web.json_response({"integrations": items, "count": len(items)})

    async def get_integration(self, request: web.Request) -> web.Response:
        return web.json_response(self.view(self._one(request, request.match_info["id"])))

    async def check_integration(self, request: web.Request) -> web.Response:
        integration = self._one(request, request.match_info["id"])
        self._rate_limit(request)
        return web.json_response(await self._live([integration]))

    async def check_tenant(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        integrations = [i for i in self._visible(request) if i.tenant == tenant]
        if not integrations:
            raise NotFoundError(f"no integrations for tenant {tenant!r}")
        self._rate_limit(request)
        return web.json_response(await self._live(integrations))

    def _rate_limit(self, request: web.Request) -> None:
        wait = self.limiter.retry_after(request[PRINCIPAL].name)
        if wait is not None:
            raise web.HTTPTooManyRequests(
                text=f"live checks are limited to {self.config.check_rate_limit} per minute",
                headers={"Retry-After": str(max(1, int(wait + 0.999)))},
            )

    async def _live(self, integrations: list[Integration]) -> dict[str, Any]:
        """Run the probes now, in parallel; answer within the slowest probe's deadline.

        A probe that has not finished by then (it waited for a free slot) is reported with
        its previous result and `fresh: false`; it goes on running and updates the status.
        """
        bound = max(probe_deadline(i) for i in integrations) + 1.0
        tasks = {i.id: asyncio.ensure_future(self.runner.run_once(i.id)) for i in integrations}
        await asyncio.wait(tasks.values(), timeout=bound)
        out = []
        for i in integrations:
            view = self.view(i)
            view["fresh"] = tasks[i.id].done() and not tasks[i.id].cancelled()
            out.append(view)
        return {"integrations": out, "count": len(out)}

    async def explain(self, request: web.Request) -> web.Response:
        entry = self.catalog.lookup(request.match_info["provider"], request.match_info["code"])
        return web.json_response(entry.to_dict())

    async def incidents(self, request: web.Request) -> web.Response:
        principal = request[PRINCIPAL]
        limit_text = request.query.get("limit", "50")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 500:
            raise web.HTTPBadRequest(
                text=f"limit must be a whole number from 1 to 500, not {limit_text!r}"
            )
        items = []
        for inc in await self.store.recent_incidents(int(limit_text)):
            tenants = inc.details.get("tenants", [])
            if principal.is_admin or principal.tenant in tenants:
                items.append(
                    {
                        "dedup_key": inc.dedup_key,
                        "rule": inc.rule,
                        "summary": inc.summary,
                        "opened_at": inc.opened_at.isoformat(),
                        "resolved_at": inc.resolved_at.isoformat() if inc.resolved_at else None,
                        "open": inc.is_open,
                    }
                )
        return web.json_response({"incidents": items, "count": len(items)})

    # -- views ------------------------------------------------------------------------

    def view(self, integration: Integration) -> dict[str, Any]:
        state = self.runner.states.get(integration.id)
        result = self.runner.results.get(integration.id)
        findings = [f.to_dict() for f in result.findings] if result else []
        failing = [f for f in findings if f["status"] not in ("ok", "unknown")]
        return {
            "id": integration.id,
            "name": integration.name,
            "provider": integration.provider,
            "tenant": integration.tenant,
            "status": state.status.value if state else Status.UNKNOWN.value,
            "since": _iso(state.since if state else None),
            "last_checked": _iso(state.last_checked if state else None),
            "last_success": _iso(state.last_success if state else None),
            "unreachable_since": _iso(state.unreachable_since if state else None),
            "last_result_status": result.status.value if result else None,
            "consecutive_failures": state.consecutive_failures if state else 0,
            "problems": failing,
            "findings": findings,
        }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _retry_header(exc: web.HTTPException) -> dict[str, str] | None:
    value = exc.headers.get("Retry-After")
    return {"Retry-After": value} if value else None

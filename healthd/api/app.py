"""The HTTP listener: /metrics, /healthz, /readyz, the status API under /api/v1, /openapi.json,
and the status page at `/`.

aiohttp's server rather than Starlette: the daemon already runs on aiohttp, and one
library for both the probing client and the listener keeps one event loop and no ASGI
server to configure. Every error is an RFC 9457 problem document (`problems.py`): a bad id
or parameter is a 4xx naming what was wrong, anything unexpected a 500 that says nothing
about internals. Tenant isolation is applied through `Principal.may_see` only: another
tenant's id answers exactly as an id that does not exist.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Sequence

import structlog
from aiohttp import web

from healthd.api import schemas
from healthd.api.auth import PRINCIPAL
from healthd.api.callbacks import PREFIX as CALLBACKS_PREFIX
from healthd.api.listener import Connection
from healthd.api.openapi import openapi_document
from healthd.api.page import StatusPage
from healthd.api.pages import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, page
from healthd.api.problems import ApiProblem, problem, shown
from healthd.api.registry import registry_request
from healthd.api.shared import shared_dependencies
from healthd.api.views import (
    STATUSES,
    Query,
    ViewCache,
    answer,
    detail_view,
    integration_view,
    visible_integration,
)
from healthd.api.workspace_tokens import token_table
from healthd.catalog import Catalog
from healthd.config import ApiConfig
from healthd.errors import NotFoundError
from healthd.interfaces import Store
from healthd.metrics import MetricsEndpoint
from healthd.model import PLATFORM_TENANT, Integration, IntegrationState
from healthd.registry import probes
from healthd.runner import Runner, probe_deadline

log = structlog.get_logger("healthd.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Paths anyone may fetch: the page shell, its assets and the API description hold no data.
# Provider callbacks carry the provider's signature instead of a token (`callbacks`).
PUBLIC_PATHS = frozenset({"/", "/openapi.json"})
PUBLIC_PREFIXES = ("/static/", CALLBACKS_PREFIX)
# What an integration without a state yet is (`views.status_of`), for the status filter.
_UNKNOWN = IntegrationState(integration_id="")
# An integration's answer carries this many of its latest transitions.
HISTORY = 20
# Slack on top of the slowest probe's deadline for storing the result and answering.
LIVE_SLACK_SECONDS = 1.0
# The largest request body read (a silence is a few hundred bytes); more answers 413.
MAX_BODY = 64 * 1024
# A provider callback may be larger: SendGrid posts its events in batches of up to 768 KB.
CALLBACK_MAX_BODY = 1024 * 1024


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
        ready: Callable[[], str | None],
        live: Callable[[Integration], Awaitable[object]] | None = None,
    ) -> None:
        """`live` runs one live check (the runner's `run_once` unless given: replicas have
        the integration's owner run it, healthd.cluster.checks)."""
        self.runner = runner
        self._live_run = live or (lambda integration: runner.run_once(integration.id))
        self.store = store
        self.catalog = catalog
        self.metrics = metrics
        self.tokens = token_table(config)
        self.ready = ready
        self.rate_limit = config.check_rate_limit
        self.limiter = RateLimiter(config.check_rate_limit)
        self.metrics_require_token = config.metrics_require_token
        self.health_require_token = config.health_require_token
        self.page = StatusPage()
        self.views = ViewCache(runner.states, runner.results)
        # By tenant, kept as the registry API adds and removes (`indexed`, `unindexed`).
        self._by_tenant: dict[str, dict[str, Integration]] = defaultdict(dict)
        self._tenant_of: dict[str, str] = {}
        self._sorted_ids: list[str] | None = None  # every id, sorted: the admin list's order
        for integration in runner.integrations.values():
            self.indexed(integration)

    def indexed(self, integration: Integration) -> None:
        """An integration added or replaced at run time (`healthd.fleet`)."""
        self.unindexed(integration.id)
        self._sorted_ids = None
        self._by_tenant[integration.tenant][integration.id] = integration
        self._tenant_of[integration.id] = integration.tenant

    def unindexed(self, integration_id: str) -> None:
        tenant = self._tenant_of.pop(integration_id, None)
        if tenant is not None:
            del self._by_tenant[tenant][integration_id]
            self._sorted_ids = None
        self.views.forget(integration_id)

    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[self._errors, self._deadline, self._auth], client_max_size=MAX_BODY
        )
        app.add_routes(
            [
                *self.page.routes(),
                web.get("/healthz", self.healthz),
                web.get("/readyz", self.readyz),
                web.get("/metrics", self.metrics_handler),
                web.get("/openapi.json", self.openapi),
                web.get("/api/v1/me", self.me),
                web.get("/api/v1/integrations", self.list_integrations),
                web.get("/api/v1/integrations/{id}", self.get_integration),
                web.post("/api/v1/integrations/{id}/check", self.check_integration),
                web.post("/api/v1/tenants/{tenant}/check", self.check_tenant),
                web.get("/api/v1/errors/{provider}/{code}", self.explain),
            ]
        )
        return app

    # -- middleware -------------------------------------------------------------------

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiProblem as exc:
            return problem(exc.status, exc.detail, headers=exc.headers)
        except NotFoundError as exc:
            return problem(404, str(exc))
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return _routing_problem(request, exc)
        except Exception as exc:
            log.error("api_error", path=request.path, error_type=type(exc).__name__)
            return problem(500, "internal error; see healthd's log")

    @web.middleware
    async def _deadline(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The whole request is read within the listener's read timeout, then handled.

        The body (at most `MAX_BODY`, `CALLBACK_MAX_BODY` for a callback) is read here,
        while the connection's deadline runs (`listener.Connection`); a client still sending
        it when the deadline passes is cut off. Once the answer is ready the deadline runs
        again, for the next request.
        """
        if request.path.startswith(CALLBACKS_PREFIX):
            request = request.clone(client_max_size=CALLBACK_MAX_BODY)
        connection = request.protocol
        if not isinstance(connection, Connection):  # a test's server without the listener
            return await handler(request)
        try:
            await request.read()
        except ConnectionError:
            raise ApiProblem(408, "the request did not arrive in time") from None
        connection.request_read()
        try:
            return await handler(request)
        finally:
            connection.expect_request()

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._public(request.path):
            return await handler(request)
        principal = self.tokens.authenticate(request.headers.get("Authorization"))
        if principal is None:
            raise ApiProblem(
                401,
                "a valid bearer token is required (Authorization: Bearer <token>)",
                headers={"WWW-Authenticate": 'Bearer realm="healthd"'},
            )
        if principal.registry_only and not registry_request(request):
            raise web.HTTPNotFound()  # a registry token reads nothing (healthd.api.registry)
        request[PRINCIPAL] = principal
        response = await handler(request)
        response.headers.setdefault("Cache-Control", "no-store")  # a token's data: never cached
        return response

    def _public(self, path: str) -> bool:
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return True
        if path == "/metrics":
            return not self.metrics_require_token
        if path in ("/healthz", "/readyz"):
            return not self.health_require_token
        return False

    # -- health and metrics -----------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return answer(schemas.Healthy(status="ok"))

    async def readyz(self, request: web.Request) -> web.Response:
        # `ready()` is why healthd is not ready (starting, stopping, a failing store), or None.
        if (reason := self.ready()) is None:
            return answer(schemas.Ready(status="ready"))
        raise ApiProblem(503, reason)

    async def metrics_handler(self, request: web.Request) -> web.Response:
        body = await self.metrics.render()
        return web.Response(
            body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
        )

    async def openapi(self, request: web.Request) -> web.Response:
        document = openapi_document(
            health_require_token=self.health_require_token,
            metrics_require_token=self.metrics_require_token,
        )
        return web.json_response(document)

    # -- status API -------------------------------------------------------------------

    async def me(self, request: web.Request) -> web.Response:
        Query(request.query, ())
        principal = request[PRINCIPAL]
        role = "admin" if principal.is_admin else "tenant"
        return answer(schemas.Principal(name=principal.name, role=role, tenant=principal.tenant))

    def view(self, integration: Integration) -> schemas.Integration:
        return integration_view(
            integration,
            self.runner.states.get(integration.id),
            self.runner.results.get(integration.id),
        )

    def _visible(self, request: web.Request, tenant: str | None = None) -> list[Integration]:
        """What this token may see; only `tenant`'s when given. The one tenant filter."""
        own = request[PRINCIPAL].tenant
        if own is not None:
            if tenant not in (None, own):
                return []
            tenant = own
        if tenant is None:
            return list(self.runner.integrations.values())
        return list(self._by_tenant.get(tenant, {}).values())

    def _shared(self, request: web.Request) -> list[schemas.SharedDependency]:
        """A workspace token's view of the platform's shared integrations (healthd.api.shared)."""
        own = request[PRINCIPAL].tenant
        if own is None or own == PLATFORM_TENANT:
            return []
        return shared_dependencies(
            self._by_tenant.get(PLATFORM_TENANT, {}).values(),
            self._by_tenant.get(own, {}).values(),
            self.runner.states,
        )

    def _one(self, request: web.Request) -> Integration:
        """The integration named in the path, if this token may see it; else 404."""
        return visible_integration(
            self.runner.integrations, request[PRINCIPAL], request.match_info["id"]
        )

    async def list_integrations(self, request: web.Request) -> web.Response:
        q = Query(request.query, ("tenant", "provider", "status", "limit", "cursor"))
        tenant = q.tenant()
        provider = q.choice("provider", sorted(probes()))
        status = q.choice("status", STATUSES)
        limit = q.integer("limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
        after = decode_cursor(q.get("cursor"))
        integrations, states = self.runner.integrations, self.runner.states

        def select(run: Sequence[str]) -> Sequence[str]:
            """The ids of `run` the filters take: comprehensions, no call per id."""
            if provider is not None:
                run = [iid for iid in run if integrations[iid].provider == provider]
            if status is not None:
                run = [iid for iid in run if states.get(iid, _UNKNOWN).status == status]
            return run

        texts, cursor = page(
            self._visible_ids(request, tenant),
            lambda iid: self.views.text(integrations[iid]),
            after=after,
            limit=limit,
            select=select if provider is not None or status is not None else None,
        )
        shared = ", ".join(d.model_dump_json() for d in self._shared(request))
        # `schemas.IntegrationList`, joined from each view's cached text (see `ViewCache`).
        body = (
            f'{{"integrations": [{", ".join(texts)}], "count": {len(texts)},'
            f' "next_cursor": {json.dumps(cursor)}, "shared_dependencies": [{shared}]}}'
        )
        return web.Response(text=body, content_type="application/json")

    def _visible_ids(self, request: web.Request, tenant: str | None) -> list[str]:
        """The ids `_visible` gives, sorted (the list's order): the fleet's kept sorted
        between changes, a tenant's sorted when asked."""
        own = request[PRINCIPAL].tenant
        if own is None and tenant is None:
            if self._sorted_ids is None:
                self._sorted_ids = sorted(self.runner.integrations)
            return self._sorted_ids
        return sorted(i.id for i in self._visible(request, tenant))

    async def get_integration(self, request: web.Request) -> web.Response:
        Query(request.query, ())
        integration = self._one(request)
        history = await self.store.transitions(integration.id, limit=HISTORY)
        return answer(detail_view(self.view(integration), history))

    async def check_integration(self, request: web.Request) -> web.Response:
        Query(request.query, ())
        integration = self._one(request)
        self._rate_limit(request)
        return answer(await self._live([integration]))

    async def check_tenant(self, request: web.Request) -> web.Response:
        Query(request.query, ())
        tenant = request.match_info["tenant"]
        integrations = self._visible(request, tenant)
        if not integrations:
            raise NotFoundError(f"no integrations for the tenant {shown(tenant)}")
        self._rate_limit(request)
        return answer(await self._live(integrations))

    def _rate_limit(self, request: web.Request) -> None:
        wait = self.limiter.retry_after(request[PRINCIPAL].name)
        if wait is not None:
            seconds = max(1, int(wait + 0.999))
            raise ApiProblem(
                429,
                f"live checks are limited to {self.rate_limit} per minute per token, to spare "
                f"the providers; try again in {seconds} s",
                headers={"Retry-After": str(seconds)},
            )

    async def _live(self, integrations: list[Integration]) -> schemas.LiveCheck:
        """Run the probes now, in parallel; answer within the slowest probe's deadline.

        Runs go through `Runner.run_once`, so a scheduled run or another caller's check of
        the same integration already under way is joined, not repeated. A run that has not
        finished by the bound (it waited for a free slot) is reported with its previous
        result and `fresh: false`; it goes on and updates the status when it ends.
        """
        bound = max(probe_deadline(i) for i in integrations) + LIVE_SLACK_SECONDS
        tasks = {i.id: asyncio.ensure_future(self._live_run(i)) for i in integrations}
        await asyncio.wait(tasks.values(), timeout=bound)
        out = [
            schemas.LiveIntegration(**dict(self.view(i)), fresh=_finished(tasks[i.id], i))
            for i in integrations
        ]
        return schemas.LiveCheck(integrations=out, count=len(out))

    async def explain(self, request: web.Request) -> web.Response:
        Query(request.query, ())
        provider, code = request.match_info["provider"], request.match_info["code"]
        entry = self.catalog.get(provider, code)
        if entry is None:
            raise NotFoundError(f"no catalogue entry for {shown(provider)} code {shown(code)}")
        return answer(schemas.CatalogEntry.model_validate(entry))


def _finished(task: asyncio.Future[object], integration: Integration) -> bool:
    """Whether the live run ended with a result; a failure is logged, never lost."""
    if not task.done():
        task.add_done_callback(lambda t: _finished(t, integration))
        return False
    if task.cancelled():
        return False
    if task.exception() is not None:
        log.error(
            "live_check_failed",
            integration=integration.id,
            error_type=type(task.exception()).__name__,
        )
        return False
    return True


def _routing_problem(request: web.Request, exc: web.HTTPException) -> web.Response:
    """aiohttp's own 404/405 (no such path, wrong method) as problem documents."""
    headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return problem(
            405, f"{request.method} is not allowed here; allowed: {allowed}", headers=headers
        )
    if isinstance(exc, web.HTTPNotFound):
        return problem(404, f"no such path: {shown(request.path)}")
    return problem(exc.status, exc.reason, headers=headers)

"""The admin API for run-time silences: `GET/POST /api/v1/silences`, `DELETE .../{name}`.

Admin tokens only. A tenant token gets the same 404 as a path that does not exist, not a
403: a tenant has no business knowing that silences exist or what they are called, and
a 403 would tell it. Bad input answers 400 with a problem document naming the field.

GET lists the silences in force in name order, `limit` at a time with `cursor` to go on
(`healthd.api.pages`, as every list); `tenant`, `provider` and `integration` keep the
silences whose selector takes that value (an empty selector takes any).

POST body (JSON object):
- `name` (required): unique among the silences in force;
- `ends_at` (RFC 3339 with offset) or `duration` (`30m`, `2h`, seconds): exactly one;
  at most `MAX_LENGTH` from now;
- `starts_at` (optional, default now): a silence may be booked ahead;
- `rules`: `"all"` (default) or a list of rule names;
- `integrations`, `tenants`, `providers`: selectors, each a list; empty matches anything,
  and every value must name something healthd runs now (a typo would silence nothing):
  the integrations of the config file and of the registry API as they are at the POST,
  so an integration registered a moment ago can be silenced at once, a removed one not.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from healthd.alerts.engine import AlertEngine
from healthd.alerts.settings import MaintenanceWindow
from healthd.alerts.silences import Silence, SilenceExists, SilenceNotFound
from healthd.api import schemas
from healthd.api.auth import PRINCIPAL, Principal
from healthd.api.pages import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, page
from healthd.api.problems import ApiProblem, shown
from healthd.api.schemas import SilenceRequest
from healthd.api.views import Query, answer, json_object
from healthd.model import Integration
from healthd.registry import probes

MAX_LENGTH = schemas.LONGEST_SILENCE


def silence_routes(
    engine: AlertEngine, integrations: Mapping[str, Integration]
) -> list[web.RouteDef]:
    """The routes, for the API's application (its auth middleware sets `PRINCIPAL`)."""
    handlers = _Handlers(engine, integrations)
    return [
        web.get("/api/v1/silences", handlers.listing),
        web.post("/api/v1/silences", handlers.create),
        web.delete("/api/v1/silences/{name}", handlers.delete),
    ]


# A selector of the POST body and of the list's filters, and what names its values.
_SELECTORS = {"integrations": "integration", "tenants": "tenant", "providers": "provider"}


class _Handlers:
    def __init__(self, engine: AlertEngine, integrations: Mapping[str, Integration]) -> None:
        self._silences = engine.silences
        self._clock = engine.silences.clock
        # The runner's own table: the registry API's changes show in it as they are made.
        self._integrations = integrations

    async def listing(self, request: web.Request) -> web.Response:
        _admin_only(request)
        q = Query(request.query, ("limit", "cursor", *_SELECTORS.values()))
        limit = q.integer("limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
        after = decode_cursor(q.get("cursor"))
        wanted = {
            "integrations": q.get("integration"),
            "tenants": q.tenant(),
            "providers": q.choice("provider", sorted(probes())),
        }
        by_name = {s.name: s for s in self._silences.list()}

        def item(name: str) -> schemas.Silence | None:
            window = by_name[name].window
            for selector, value in wanted.items():
                taken = getattr(window, selector)
                if value is not None and taken and value not in taken:
                    return None
            return silence_view(by_name[name])

        items, cursor = page(sorted(by_name), item, after=after, limit=limit)
        return answer(schemas.SilenceList(silences=items, count=len(items), next_cursor=cursor))

    async def create(self, request: web.Request) -> web.Response:
        principal = _admin_only(request)
        window = self._window(await json_object(request))
        try:
            silence = await self._silences.add(window, created_by=principal.name)
        except SilenceExists:
            raise ApiProblem(
                409, f"a silence named {shown(window.name)} is already in force"
            ) from None
        return answer(silence_view(silence), status=201)

    async def delete(self, request: web.Request) -> web.Response:
        principal = _admin_only(request)
        name = request.match_info["name"]
        try:
            await self._silences.remove(name, removed_by=principal.name)
        except SilenceNotFound:
            raise ApiProblem(404, f"no silence named {shown(name)}") from None
        return web.Response(status=204)

    def _window(self, body: dict[str, Any]) -> MaintenanceWindow:
        try:
            req = SilenceRequest.model_validate(body)
        except ValidationError as exc:
            # A duration past what a timedelta holds (`1e400`, `999999999999d`) is one of
            # these too: healthd.durations says it is too long.
            raise _bad(_describe(exc)) from None
        now = self._clock.now()
        start = req.starts_at or now
        end = _end(req, start)
        if end <= now or end <= start:
            raise _bad("the silence must end in the future and after it starts")
        if end - now > MAX_LENGTH:
            raise _bad(f"a silence may last at most {MAX_LENGTH.days} days from now")
        for selector in _SELECTORS:
            unknown = self._unknown(selector, getattr(req, selector))
            if unknown:
                raise _bad(f"{selector}: unknown {', '.join(map(shown, unknown[:5]))}")
        return MaintenanceWindow(
            name=req.name,
            start=start,
            end=end,
            rules=req.rules,
            integrations=req.integrations,
            tenants=req.tenants,
            providers=req.providers,
        )

    def _unknown(self, selector: str, values: tuple[str, ...]) -> list[str]:
        """The values that name nothing healthd runs now, read at each POST: the registry
        API's changes show at once (tenants and providers take a scan of the fleet; a
        silence is rare, and a set kept from the start would be wrong)."""
        integrations = self._integrations
        if selector == "integrations":
            return sorted(v for v in set(values) if v not in integrations)
        key = _SELECTORS[selector]
        known = {getattr(i, key) for i in integrations.values()} if values else set()
        return sorted(set(values) - known)


def silence_view(silence: Silence) -> schemas.Silence:
    return schemas.Silence(
        **dict(silence.window), created_by=silence.created_by, created_at=silence.created_at
    )


def _end(req: SilenceRequest, start: datetime) -> datetime:
    if (req.ends_at is None) == (req.duration is None):
        raise _bad("give exactly one of ends_at or duration")
    if req.ends_at is not None:
        return req.ends_at
    assert req.duration is not None
    if req.duration <= timedelta(0):
        raise _bad("duration must be positive")
    if req.duration > MAX_LENGTH:
        raise _bad(f"a silence may last at most {MAX_LENGTH.days} days from now")
    try:
        return start + req.duration
    except OverflowError:  # a start near year 9999
        raise _bad("starts_at: too far ahead") from None


def _admin_only(request: web.Request) -> Principal:
    principal = request[PRINCIPAL]
    if not principal.is_admin:
        # The listener answers this exactly as it answers a path that does not exist
        # ("no such path"): a tenant cannot tell that silences exist.
        raise web.HTTPNotFound()
    return principal


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def _bad(detail: str) -> ApiProblem:
    return ApiProblem(400, detail)

"""The registry API, for the CRM's backend: integrations added, changed and removed live.

    PUT    /api/v1/integrations/{id}              create or replace one (If-Match, If-None-Match)
    DELETE /api/v1/integrations/{id}              remove one (If-Match)
    GET    /api/v1/integrations/{id}/registration what is registered, with its ETag
    PUT    /api/v1/tenants/{tenant}/integrations  make this the tenant's whole set (If-Match)
    GET    /api/v1/tenants/{tenant}/integrations  the tenant's registered set, with its ETag

Admin and registry tokens only; any other token gets the 404 of a path that does not
exist (a tenant has no business learning that the registry is there). A body is checked
by the config file's own models (`healthd.fleet`): a bad one answers 422 naming the key
path as `healthd validate` would (`options.auth_param: ...`, `integrations[2].timeout:
...`). Credentials are write-only: an answer says which are set, each with a short
fingerprint (`healthd.vault`), never a value. Config-file integrations answer 409.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

from aiohttp import web

from healthd.api.auth import PRINCIPAL
from healthd.api.problems import ApiProblem, shown
from healthd.api.schemas import Credential, Registration, TenantSet
from healthd.api.views import TENANT_PATTERN, answer, json_object
from healthd.errors import ConfigError, StoreError
from healthd.fleet import Entry, Fleet, Outcome, PreconditionFailed, RegistryConflict

# (method, route) pairs a registry token may call; everything else is 404 for it.
REGISTRY_ROUTES = frozenset(
    {
        ("PUT", "/api/v1/integrations/{id}"),
        ("DELETE", "/api/v1/integrations/{id}"),
        ("GET", "/api/v1/integrations/{id}/registration"),
        ("PUT", "/api/v1/tenants/{tenant}/integrations"),
        ("GET", "/api/v1/tenants/{tenant}/integrations"),
    }
)


def registry_request(request: web.Request) -> bool:
    """Whether the request is one of the registry's routes (what a registry token may do)."""
    route = request.match_info.route.resource
    return route is not None and (request.method, route.canonical) in REGISTRY_ROUTES


def registry_routes(fleet: Fleet) -> list[web.RouteDef]:
    """The routes, for the API's application (its auth middleware sets `PRINCIPAL`)."""
    h = _Handlers(fleet)
    return [
        web.put("/api/v1/integrations/{id}", h.put),
        web.delete("/api/v1/integrations/{id}", h.delete),
        web.get("/api/v1/integrations/{id}/registration", h.get),
        web.put("/api/v1/tenants/{tenant}/integrations", h.put_tenant),
        web.get("/api/v1/tenants/{tenant}/integrations", h.get_tenant),
    ]


def registration(entry: Entry) -> Registration:
    spec = json.loads(entry.record.spec)
    spec.pop("credentials")
    return Registration(
        id=entry.record.id,
        tenant=entry.record.tenant,
        revision=entry.record.revision,
        updated_at=entry.record.updated_at,
        etag=entry.etag,
        spec=spec,
        credentials={
            n: Credential(set=True, fingerprint=f) for n, f in sorted(entry.fingerprints.items())
        },
    )


class _Handlers:
    def __init__(self, fleet: Fleet) -> None:
        self._fleet = fleet

    async def put(self, request: web.Request) -> web.Response:
        _writer_only(request)
        integration_id = request.match_info["id"]
        body = await json_object(request)
        with _answers():
            entry, outcome = await self._fleet.put(
                integration_id,
                body,
                if_match=request.headers.get("If-Match"),
                if_none_match=request.headers.get("If-None-Match"),
            )
        response = answer(registration(entry), status=201 if outcome.created else 200)
        response.headers["ETag"] = entry.etag
        return response

    async def delete(self, request: web.Request) -> web.Response:
        _writer_only(request)
        with _answers():
            await self._fleet.delete(
                request.match_info["id"], if_match=request.headers.get("If-Match")
            )
        return web.Response(status=204)

    async def get(self, request: web.Request) -> web.Response:
        _writer_only(request)
        integration_id = request.match_info["id"]
        entry = self._fleet.entries.get(integration_id)
        if entry is None:
            where = self._fleet.source_of(integration_id)
            detail = f"no registered integration by the id of {shown(integration_id)}"
            if where == "config":
                detail += " (it comes from the config file)"
            raise ApiProblem(404, detail)
        response = answer(registration(entry))
        response.headers["ETag"] = entry.etag
        return response

    async def put_tenant(self, request: web.Request) -> web.Response:
        _writer_only(request)
        tenant = _tenant(request)
        body = await json_object(request)
        items = body.get("integrations")
        if set(body) != {"integrations"} or not isinstance(items, list):
            raise ApiProblem(422, 'integrations: the body must be {"integrations": [...]}')
        with _answers():
            outcome = await self._fleet.replace_tenant(
                tenant, items, if_match=request.headers.get("If-Match")
            )
        return self._tenant_answer(tenant, outcome)

    async def get_tenant(self, request: web.Request) -> web.Response:
        _writer_only(request)
        return self._tenant_answer(_tenant(request), Outcome())

    def _tenant_answer(self, tenant: str, outcome: Outcome) -> web.Response:
        entries = sorted(self._fleet.tenant_entries(tenant), key=lambda e: e.record.id)
        etag = self._fleet.tenant_etag(tenant)
        response = answer(
            TenantSet(
                tenant=tenant,
                etag=etag,
                integrations=[registration(e) for e in entries],
                created=outcome.created,
                changed=outcome.changed,
                removed=outcome.removed,
                unchanged=outcome.unchanged,
            )
        )
        response.headers["ETag"] = etag
        return response


@contextlib.contextmanager
def _answers() -> Iterator[None]:
    """The fleet's refusals as problem documents: 422 a bad body (the config's key path
    and message), 409 a conflict, 412 a stale If-Match, 503 a store that did not write."""
    try:
        yield
    except ConfigError as exc:
        raise ApiProblem(422, str(exc)) from None
    except RegistryConflict as exc:
        raise ApiProblem(409, str(exc)) from None
    except PreconditionFailed as exc:
        raise ApiProblem(412, str(exc)) from None
    except StoreError:
        raise ApiProblem(503, "the store did not take the change; nothing changed") from None


def _tenant(request: web.Request) -> str:
    tenant = request.match_info["tenant"]
    if not TENANT_PATTERN.fullmatch(tenant):
        raise ApiProblem(422, f"tenant: not a tenant name: {shown(tenant)}")
    return tenant


def _writer_only(request: web.Request) -> None:
    if not request[PRINCIPAL].may_write_registry:
        raise web.HTTPNotFound()  # as a path that does not exist: see the module

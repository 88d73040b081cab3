"""The OpenAPI 3.1 description of healthd's HTTP listener, served at /openapi.json.

The body schemas are generated from the pydantic models in `schemas.py`, the very models
the handlers build their answers with, so a body cannot drift from its description. The
operations (paths, parameters, who may call them, which errors they answer) are the table
`OPERATIONS` below; `tests/api` checks that it names every route and runs schemathesis
against the served document on a live daemon. Whether /healthz, /readyz and /metrics need
a token is configuration, so the document is built for the running daemon's settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, models_json_schema

from healthd.alerts.rules.table import RULES
from healthd.api import schemas
from healthd.api.examples import CODE
from healthd.api.pages import DEFAULT_LIMIT, MAX_LIMIT
from healthd.api.views import INCIDENTS_DEFAULT, INCIDENTS_MAX, STATUSES, TENANT_PATTERN
from healthd.config import IntegrationRequest
from healthd.history import WINDOWS
from healthd.registry import probes
from healthd.version import __version__

REF = "#/components/schemas/{model}"
# Who may call an operation: anyone; any token; or, as configured, anyone or a token.
Access = Literal["public", "token", "health", "metrics"]
_PUBLIC: list[dict[str, list[str]]] = []  # `security: []`: no token needed
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


class _Generator(GenerateJsonSchema):
    """pydantic's generator without a title on every property (the name says as much)."""

    def field_title_should_be_set(self, schema: object) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    where: Literal["path", "query"]
    description: str
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False  # a path parameter always is

    def document(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": self.where,
            "required": self.required or self.where == "path",
            "description": self.description,
            "schema": dict(self.schema),
        }


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation: `body` is a response model, or media types with a plain schema."""

    method: str
    path: str
    operation_id: str
    summary: str
    access: Access
    body: type[BaseModel] | Mapping[str, Mapping[str, Any]] | None
    ok: str = "OK"
    status: str = "200"
    description: str = ""
    params: tuple[Param, ...] = ()
    request: type[BaseModel] | None = None
    errors: Mapping[str, str] = field(default_factory=dict)


# Headers that go with some errors; every other error has only its problem document.
_ERROR_HEADERS = {
    "401": {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
    "429": {"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1}}},
    "503": {"Retry-After": {"required": False, "schema": {"type": "integer", "minimum": 1}}},
}
_TOKEN_ERRORS = {
    "400": "Unknown, repeated or invalid query parameter",
    "401": "Missing or unknown bearer token",
}
_NOT_FOUND = "No such integration for this token (another tenant's id included)"
_ADMIN_ONLY = "Not an admin token, or no silence of that name"
_RATE_LIMITED = "Too many live checks for this token; wait the Retry-After seconds"
_ID = Param("id", "path", "the integration's id")
_RULE = Param(
    "rule", "query", "only this rule's", {"type": "string", "enum": [rule.name for rule in RULES]}
)
_TEXT = {"type": "string"}
_TENANT = Param(
    "tenant",
    "query",
    "only this tenant's (another tenant's, for a tenant token: none)",
    {"type": "string", "pattern": f"^{TENANT_PATTERN.pattern}$"},
)


_CURSOR_NOT_GIVEN = "Unknown, repeated or invalid query parameter, or a cursor not given out"


def _providers() -> str:
    return ", ".join(sorted(probes()))


def _provider(description: str) -> Param:
    return Param("provider", "query", description, {"type": "string", "enum": sorted(probes())})


def _paged(default: int, maximum: int, order: str) -> tuple[Param, Param]:
    """`limit` and `cursor`, as every list takes them (`healthd.api.pages`)."""
    return (
        Param(
            "limit",
            "query",
            f"at most this many ({order})",
            {"type": "integer", "minimum": 1, "maximum": maximum, "default": default},
        ),
        Param("cursor", "query", "the previous answer's next_cursor"),
    )


# A list read in id order a page at a time (`healthd.api.pages`).
_PAGE = _paged(DEFAULT_LIMIT, MAX_LIMIT, "in id order")


def _operations() -> tuple[Operation, ...]:
    """The table of operations; a function, as the provider names come from the registry."""
    return (
        Operation(
            "get",
            "/",
            "statusPage",
            "The status page: a shell that asks for a token, then calls the API",
            "public",
            {"text/html": _TEXT},
            ok="HTML",
        ),
        Operation(
            "get",
            "/static/{name}",
            "statusPageAsset",
            "The status page's script and stylesheet",
            "public",
            {"text/javascript": _TEXT, "text/css": _TEXT},
            ok="The asset",
            params=(Param("name", "path", "status.js or status.css"),),
            errors={"404": "No such asset"},
        ),
        Operation(
            "get", "/healthz", "healthz", "healthd's own process is up", "health", schemas.Healthy
        ),
        Operation(
            "get",
            "/readyz",
            "readyz",
            "healthd has started and is not stopping",
            "health",
            schemas.Ready,
            errors={"503": "Starting or stopping"},
        ),
        Operation(
            "get",
            "/metrics",
            "metrics",
            "Prometheus metrics (text format 0.0.4)",
            "metrics",
            {"text/plain": _TEXT},
            ok="Prometheus text exposition",
        ),
        Operation(
            "get",
            "/openapi.json",
            "openapi",
            "This document",
            "public",
            {"application/json": {"type": "object"}},
            ok="OpenAPI 3.1",
        ),
        Operation(
            "get",
            "/api/v1/me",
            "whoAmI",
            "Which token this is: admin or a tenant's",
            "token",
            schemas.Principal,
        ),
        Operation(
            "get",
            "/api/v1/integrations",
            "listIntegrations",
            "Integrations with their status and findings",
            "token",
            schemas.IntegrationList,
            params=(
                _TENANT,
                _provider("only this provider's"),
                Param("status", "query", "only this status", {"type": "string", "enum": STATUSES}),
                *_PAGE,
            ),
            errors={"400": _CURSOR_NOT_GIVEN},
        ),
        Operation(
            "get",
            "/api/v1/integrations/{id}",
            "getIntegration",
            "One integration, with its recent transitions",
            "token",
            schemas.IntegrationDetail,
            params=(_ID,),
            errors={"404": _NOT_FOUND},
        ),
        Operation(
            "post",
            "/api/v1/integrations/{id}/check",
            "checkIntegration",
            "Run the integration's probe now and answer with the fresh result",
            "token",
            schemas.LiveCheck,
            description=(
                "Answers within the probe's timeout (plus a second). A run already "
                "under way for the same integration is joined, not repeated."
            ),
            params=(_ID,),
            errors={"404": _NOT_FOUND, "429": _RATE_LIMITED},
        ),
        Operation(
            "get",
            "/api/v1/integrations/{id}/examples",
            "deliveryExamples",
            "Message ids with one provider code, ready for a support request",
            "token",
            schemas.DeliveryExamples,
            description=(
                "The newest messages counted with the code: from the last 24 hours, or the"
                " last 7 days for a content code such as Twilio's 30007."
            ),
            params=(
                _ID,
                Param(
                    "code",
                    "query",
                    "the provider's error code, such as 30007",
                    {"type": "string", "pattern": f"^{CODE.pattern}$"},
                    required=True,
                ),
                Param(
                    "limit",
                    "query",
                    "at most this many examples",
                    {"type": "integer", "minimum": 1, "maximum": 50, "default": 5},
                ),
            ),
            errors={"404": _NOT_FOUND},
        ),
        Operation(
            "post",
            "/callbacks/{id}",
            "providerCallback",
            "A provider's delivery callback for one integration (Twilio status callbacks,"
            " SendGrid's signed Event Webhook)",
            "public",
            None,
            ok="Taken: its outcomes are queued for the delivery ledger",
            description=(
                "No bearer token: the provider's signature (X-Twilio-Signature, or SendGrid's"
                " X-Twilio-Email-Event-Webhook-Signature and -Timestamp) is verified instead."
                " A replay is taken again and counted once."
            ),
            params=(_ID,),
            errors={
                "400": "Signed, but not a callback healthd can read",
                "403": "Missing or wrong signature, or a SendGrid timestamp out of tolerance",
                "404": "No integration takes callbacks at this URL",
                "413": "The body is larger than a provider sends",
                "503": "healthd is behind on writing outcomes; send again after Retry-After",
            },
        ),
        Operation(
            "post",
            "/api/v1/tenants/{tenant}/check",
            "checkTenant",
            "Run every probe of a tenant now, in parallel",
            "token",
            schemas.LiveCheck,
            description="Answers within the slowest probe's timeout (plus a second).",
            params=(Param("tenant", "path", "the tenant's name"),),
            errors={"404": "No integrations for this tenant and token", "429": _RATE_LIMITED},
        ),
        Operation(
            "get",
            "/api/v1/errors/{provider}/{code}",
            "explainError",
            "What a provider error code means and how to fix it",
            "token",
            schemas.CatalogEntry,
            params=(
                Param("provider", "path", f"{_providers()}, or healthd for healthd's own codes"),
                Param("code", "path", "the provider's code or a healthd code"),
            ),
            errors={"404": "Unknown code"},
        ),
        Operation(
            "get",
            "/api/v1/incidents",
            "listIncidents",
            "Open incidents first, then recently resolved ones",
            "token",
            schemas.IncidentList,
            description=(
                "Open ones newest first, then resolved ones newest first, paged by next_cursor."
                " A tenant token sees only incidents of its own tenant."
            ),
            params=(
                *_paged(INCIDENTS_DEFAULT, INCIDENTS_MAX, "open first, newest first"),
                Param(
                    "open", "query", "true: only open; false: only resolved", {"type": "boolean"}
                ),
                _TENANT,
                _provider("only this provider's"),
                Param("integration", "query", "only this integration's"),
                _RULE,
            ),
            errors={"400": _CURSOR_NOT_GIVEN},
        ),
        Operation(
            "get",
            "/api/v1/silences",
            "listSilences",
            "Run-time silences in force (admin only)",
            "token",
            schemas.SilenceList,
            description=(
                "In name order, paged by next_cursor. A tenant token gets 404, as for a path"
                " that does not exist."
            ),
            params=(
                *_paged(DEFAULT_LIMIT, MAX_LIMIT, "in name order"),
                Param("integration", "query", "only silences whose selector takes this id"),
                Param(
                    "tenant",
                    "query",
                    "only silences whose selector takes this tenant",
                    {"type": "string", "pattern": f"^{TENANT_PATTERN.pattern}$"},
                ),
                _provider("only silences whose selector takes this provider"),
            ),
            errors={"404": _ADMIN_ONLY, "400": _CURSOR_NOT_GIVEN},
        ),
        Operation(
            "post",
            "/api/v1/silences",
            "createSilence",
            "Silence rules for a while (admin only); resolves still go out",
            "token",
            schemas.Silence,
            ok="Created",
            status="201",
            request=schemas.SilenceRequest,
            errors={"404": _ADMIN_ONLY, "409": "A silence of that name is in force"},
        ),
        Operation(
            "delete",
            "/api/v1/silences/{name}",
            "deleteSilence",
            "End a silence now (admin only)",
            "token",
            None,
            ok="Deleted",
            status="204",
            params=(Param("name", "path", "the silence's name"),),
            errors={"404": _ADMIN_ONLY},
        ),
        # -- history (issue 15): healthd.api.history --
        Operation(
            "get",
            "/api/v1/integrations/{id}/history",
            "getIntegrationHistory",
            "One integration's uptime, cells and transitions over a window",
            "token",
            schemas.IntegrationHistory,
            params=(
                _ID,
                Param(
                    "window",
                    "query",
                    "24h and 7d in hours, 30d and 90d in UTC days",
                    {"type": "string", "enum": list(WINDOWS), "default": "24h"},
                ),
            ),
            errors={"404": _NOT_FOUND},
        ),
        Operation(
            "get",
            "/api/v1/incidents/history",
            "listIncidentHistory",
            "Every kept incident occurrence, newest first, with how long it lasted",
            "token",
            schemas.IncidentHistory,
            description="A tenant token sees only incidents of its own tenant.",
            params=(
                Param(
                    "limit",
                    "query",
                    "at most this many",
                    {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": INCIDENTS_MAX,
                        "default": INCIDENTS_DEFAULT,
                    },
                ),
                Param(
                    "cursor",
                    "query",
                    "next_cursor of the previous page",
                    {"type": "string", "pattern": "^[0-9]{1,18}$"},
                ),
                Param("integration", "query", "only this integration's"),
                _TENANT,
                _RULE,
                Param(
                    "open", "query", "true: only open; false: only resolved", {"type": "boolean"}
                ),
            ),
        ),
        Operation(
            "get",
            "/api/v1/history",
            "getHistorySummary",
            "For each integration: 90 days of uptime, 24 h / 7 d / 30 d shares, latency",
            "token",
            schemas.HistorySummary,
            description=(
                "Either `ids` (the cards on screen) or a page of the integrations the token "
                "may see. An id the token may not see is left out like one that does not exist."
            ),
            params=(
                Param(
                    "ids",
                    "query",
                    f"comma-separated integration ids, at most {MAX_LIMIT}; no limit or cursor",
                ),
                *_PAGE,
            ),
            errors={"400": "ids with limit or cursor, too many ids, or a cursor not given out"},
        ),
        *_registry_operations(),
    )


_REGISTRY_ONLY = "Not an admin or registry token, or no such registered integration"
_REGISTRY_ERRORS = {
    "404": _REGISTRY_ONLY,
    "409": "A config-file integration (read-only here), or another tenant's id",
    "412": "If-Match names another version (ETag) than the current one",
    "422": "The body is not a valid integration; the detail names the key path",
}
_TENANT_PATH = Param(
    "tenant",
    "path",
    "the tenant (workspace)",
    {"type": "string", "pattern": f"^{TENANT_PATTERN.pattern}$"},
)


def _registry_operations() -> tuple[Operation, ...]:
    """The registry API (healthd.api.registry): admin and registry tokens."""
    return (
        Operation(
            "put",
            "/api/v1/integrations/{id}",
            "putIntegration",
            "Create or replace a registered integration; probed at once",
            "token",
            schemas.Registration,
            description="If-Match: the ETag of the version replaced; If-None-Match: * to"
            " create only. Without `credentials`, the ones set are kept.",
            params=(_ID,),
            request=IntegrationRequest,
            errors=_REGISTRY_ERRORS,
        ),
        Operation(
            "delete",
            "/api/v1/integrations/{id}",
            "deleteIntegration",
            "Remove a registered integration; its open incidents resolve",
            "token",
            None,
            ok="Deleted",
            status="204",
            params=(_ID,),
            errors=_REGISTRY_ERRORS,
        ),
        Operation(
            "get",
            "/api/v1/integrations/{id}/registration",
            "getRegistration",
            "A registered integration as stored (credentials: set and fingerprint)",
            "token",
            schemas.Registration,
            params=(_ID,),
            errors={"404": _REGISTRY_ONLY},
        ),
        Operation(
            "put",
            "/api/v1/tenants/{tenant}/integrations",
            "putTenantIntegrations",
            "Make this the tenant's whole registered set (idempotent)",
            "token",
            schemas.TenantSet,
            params=(_TENANT_PATH,),
            request=schemas.TenantSetRequest,
            errors=_REGISTRY_ERRORS,
        ),
        Operation(
            "get",
            "/api/v1/tenants/{tenant}/integrations",
            "getTenantIntegrations",
            "The tenant's registered set, with its ETag",
            "token",
            schemas.TenantSet,
            params=(_TENANT_PATH,),
            errors={"404": _REGISTRY_ONLY, "422": "Not a tenant name"},
        ),
    )


def components() -> dict[str, Any]:
    """Every body model's schema, and the models they refer to, by model name."""
    _, top = models_json_schema(
        [(m, "serialization") for m in schemas.RESPONSES]
        + [(m, "validation") for m in schemas.REQUESTS],
        ref_template=REF,
        schema_generator=_Generator,
    )
    return dict(top.get("$defs", {}))


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _content(body: type[BaseModel] | Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    if isinstance(body, type):
        return {"application/json": {"schema": _ref(body)}}
    return {media: {"schema": dict(schema)} for media, schema in body.items()}


def _error(status: str, description: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/problem+json": {"schema": _ref(schemas.Problem)}},
    }
    if status in _ERROR_HEADERS:
        out["headers"] = _ERROR_HEADERS[status]
    return out


def _needs_token(access: Access, health: bool, metrics: bool) -> bool:
    return {"public": False, "token": True, "health": health, "metrics": metrics}[access]


def _operation(op: Operation, health: bool, metrics: bool) -> dict[str, Any]:
    token = _needs_token(op.access, health, metrics)
    ok: dict[str, Any] = {"description": op.ok}
    if op.body is not None:
        ok["content"] = _content(op.body)
    errors = dict(op.errors)
    if op.access == "token":
        errors |= _TOKEN_ERRORS  # every /api/v1 operation checks its query and its token
    elif token:
        errors["401"] = _TOKEN_ERRORS["401"]
    out: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary}
    if op.description:
        out["description"] = op.description
    if op.params:
        out["parameters"] = [p.document() for p in op.params]
    if op.request is not None:
        out["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(op.request)}},
        }
    out["security"] = _BEARER if token else _PUBLIC
    out["responses"] = {op.status: ok} | {s: _error(s, d) for s, d in errors.items()}
    return out


@cache
def openapi_document(
    *, health_require_token: bool = False, metrics_require_token: bool = False
) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in _operations():
        paths.setdefault(op.path, {})[op.method] = _operation(
            op, health_require_token, metrics_require_token
        )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "healthd status API",
            "version": __version__,
            "description": (
                "Live status of every connected messaging integration, what is failing, "
                "and how to fix it. A tenant token sees only its own tenant; another "
                "tenant's ids answer 404, exactly like ids that do not exist. Every error "
                "is an RFC 9457 problem document."
            ),
        },
        "components": {
            "schemas": components(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": _BEARER,
        "paths": paths,
    }

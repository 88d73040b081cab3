"""The OpenAPI 3.1 description of healthd's HTTP listener, served at /openapi.json.

Written by hand beside the handlers in `app.py`; `tests/api` runs schemathesis against it
on a live daemon, so a handler that drifts from its description fails a test. Whether
/healthz, /readyz and /metrics need a token is configuration, so the document is built
for the running daemon's settings.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from healthd import __version__
from healthd.model import Category, Status
from healthd.registry import probes

_STATUSES = [s.value for s in Status]
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_NULLABLE_STRING = {"type": ["string", "null"]}
_PUBLIC: list[dict[str, Any]] = []  # `security: []`: no token needed
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


def _schemas() -> dict[str, Any]:
    finding = {
        "type": "object",
        "required": ["check", "status", "code", "category", "summary", "remediation"],
        "properties": {
            "check": {"type": "string", "examples": ["auth", "reachability"]},
            "status": {"type": "string", "enum": _STATUSES},
            "code": {"type": "string", "examples": ["twilio.auth_invalid"]},
            "provider_code": {**_NULLABLE_STRING, "examples": ["20003"]},
            "category": {"type": "string", "enum": [c.value for c in Category]},
            "summary": {"type": "string"},
            "remediation": {"type": "string", "description": "what a person should do"},
            "count": {"type": ["integer", "null"]},
            "examples": {"type": "array", "items": {"type": "string"}},
            "network_error": {"type": "boolean"},
        },
    }
    integration = {
        "type": "object",
        "required": [
            "id",
            "name",
            "provider",
            "tenant",
            "status",
            "since",
            "last_checked",
            "last_result_status",
            "findings",
            "problems",
        ],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "provider": {"type": "string"},
            "tenant": {"type": "string"},
            "status": {
                "type": "string",
                "enum": _STATUSES,
                "description": "debounced: failing after N bad runs, ok after M good ones",
            },
            "since": {**_NULLABLE_TIME, "description": "when the status last changed"},
            "last_checked": _NULLABLE_TIME,
            "last_success": _NULLABLE_TIME,
            "unreachable_since": _NULLABLE_TIME,
            "last_result_status": {
                "type": ["string", "null"],
                "enum": [*_STATUSES, None],
                "description": "the latest run's own status, before debouncing",
            },
            "consecutive_failures": {"type": "integer", "minimum": 0},
            "problems": {
                "type": "array",
                "description": "the findings that are not ok: what is failing and the fix",
                "items": {"$ref": "#/components/schemas/Finding"},
            },
            "findings": {"type": "array", "items": {"$ref": "#/components/schemas/Finding"}},
            "fresh": {
                "type": "boolean",
                "description": "live checks only: the probe finished within the bound",
            },
        },
    }
    return {
        "Finding": finding,
        "Integration": integration,
        "IntegrationList": {
            "type": "object",
            "required": ["integrations", "count"],
            "properties": {
                "integrations": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/Integration"},
                },
                "count": {"type": "integer", "minimum": 0},
            },
        },
        "Principal": {
            "type": "object",
            "required": ["name", "role", "tenant"],
            "properties": {
                "name": {"type": "string", "description": "the token's name in the config"},
                "role": {"type": "string", "enum": ["admin", "tenant"]},
                "tenant": {**_NULLABLE_STRING, "description": "null for an admin token"},
            },
        },
        "CatalogEntry": {
            "type": "object",
            "required": ["provider", "code", "title", "meaning", "fix", "category"],
            "properties": {
                "provider": {"type": "string"},
                "code": {"type": "string"},
                "title": {"type": "string"},
                "meaning": {"type": "string"},
                "fix": {"type": "string"},
                "category": {"type": "string", "enum": [c.value for c in Category]},
                "retryable": {"type": "boolean"},
                "counts_against_health": {"type": "boolean"},
            },
        },
        "Incident": {
            "type": "object",
            "required": ["dedup_key", "rule", "summary", "opened_at", "resolved_at", "open"],
            "properties": {
                "dedup_key": {"type": "string"},
                "rule": {"type": "string"},
                "summary": {"type": "string"},
                "opened_at": {"type": "string", "format": "date-time"},
                "resolved_at": _NULLABLE_TIME,
                "open": {"type": "boolean"},
                "integration": _NULLABLE_STRING,
                "provider": _NULLABLE_STRING,
                "tenant": _NULLABLE_STRING,
            },
        },
        "IncidentList": {
            "type": "object",
            "required": ["incidents", "count"],
            "properties": {
                "incidents": {"type": "array", "items": {"$ref": "#/components/schemas/Incident"}},
                "count": {"type": "integer", "minimum": 0},
            },
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"type": "string", "enum": ["ok", "ready"]}},
        },
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
            },
        },
    }


def _ok(schema: str, description: str = "OK") -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _problem(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }
    if headers:
        out["headers"] = headers
    return out


_UNAUTHORIZED = _problem(
    "Missing or unknown bearer token",
    {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
)
_BAD_QUERY = _problem("Unknown, repeated or invalid query parameter")
_RATE_LIMITED = _problem(
    "Too many live checks for this token; wait the Retry-After seconds",
    {"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1}}},
)
_ADMIN_ONLY = _problem("Not an admin token, or no silence of that name")
_NOT_FOUND = _problem("No such integration for this token (another tenant's id included)")


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


def _query_param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def _api(operation: dict[str, Any], responses: dict[str, Any]) -> dict[str, Any]:
    """An authenticated /api/v1 operation: 400 and 401 apply to every one of them."""
    return {
        **operation,
        "security": _BEARER,
        "responses": {**responses, "400": _BAD_QUERY, "401": _UNAUTHORIZED},
    }


def _plain(
    operation: dict[str, Any], require_token: bool, responses: dict[str, Any]
) -> dict[str, Any]:
    extra = {"401": _UNAUTHORIZED} if require_token else {}
    return {
        **operation,
        "security": _BEARER if require_token else _PUBLIC,
        "responses": {**responses, **extra},
    }


def _paths(health_require_token: bool, metrics_require_token: bool) -> dict[str, Any]:
    live_check = {"200": _ok("IntegrationList"), "404": _NOT_FOUND, "429": _RATE_LIMITED}
    return {
        "/": {
            "get": {
                "operationId": "statusPage",
                "summary": "The status page: a shell that asks for a token, then calls the API",
                "security": _PUBLIC,
                "responses": {
                    "200": {
                        "description": "HTML",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/static/{name}": {
            "get": {
                "operationId": "statusPageAsset",
                "summary": "The status page's script and stylesheet",
                "security": _PUBLIC,
                "parameters": [_path_param("name", "status.js or status.css")],
                "responses": {
                    "200": {
                        "description": "The asset",
                        "content": {
                            "text/javascript": {"schema": {"type": "string"}},
                            "text/css": {"schema": {"type": "string"}},
                        },
                    },
                    "404": _problem("No such asset"),
                },
            }
        },
        "/healthz": {
            "get": _plain(
                {"operationId": "healthz", "summary": "healthd's own process is up"},
                health_require_token,
                {"200": _ok("Health")},
            )
        },
        "/readyz": {
            "get": _plain(
                {"operationId": "readyz", "summary": "healthd has started and is not stopping"},
                health_require_token,
                {"200": _ok("Health"), "503": _problem("Starting or stopping")},
            )
        },
        "/metrics": {
            "get": _plain(
                {"operationId": "metrics", "summary": "Prometheus metrics (text format 0.0.4)"},
                metrics_require_token,
                {
                    "200": {
                        "description": "Prometheus text exposition",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            )
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "security": _PUBLIC,
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/api/v1/me": {
            "get": _api(
                {"operationId": "whoAmI", "summary": "Which token this is: admin or a tenant's"},
                {"200": _ok("Principal")},
            )
        },
        "/api/v1/integrations": {
            "get": _api(
                {
                    "operationId": "listIntegrations",
                    "summary": "Integrations with their status and findings",
                    "parameters": [
                        _query_param(
                            "tenant",
                            {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"},
                            "only this tenant's (another tenant's, for a tenant token: none)",
                        ),
                        _query_param(
                            "provider",
                            {"type": "string", "enum": sorted(probes())},
                            "only this provider's",
                        ),
                        _query_param(
                            "status", {"type": "string", "enum": _STATUSES}, "only this status"
                        ),
                    ],
                },
                {"200": _ok("IntegrationList")},
            )
        },
        "/api/v1/integrations/{id}": {
            "get": _api(
                {
                    "operationId": "getIntegration",
                    "summary": "One integration",
                    "parameters": [_path_param("id", "the integration's id")],
                },
                {"200": _ok("Integration"), "404": _NOT_FOUND},
            )
        },
        "/api/v1/integrations/{id}/check": {
            "post": _api(
                {
                    "operationId": "checkIntegration",
                    "summary": "Run the integration's probe now and answer with the fresh result",
                    "description": (
                        "Answers within the probe's timeout (plus a second). A run already "
                        "under way for the same integration is joined, not repeated."
                    ),
                    "parameters": [_path_param("id", "the integration's id")],
                },
                live_check,
            )
        },
        "/api/v1/tenants/{tenant}/check": {
            "post": _api(
                {
                    "operationId": "checkTenant",
                    "summary": "Run every probe of a tenant now, in parallel",
                    "description": "Answers within the slowest probe's timeout (plus a second).",
                    "parameters": [_path_param("tenant", "the tenant's name")],
                },
                {**live_check, "404": _problem("No integrations for this tenant and token")},
            )
        },
        "/api/v1/errors/{provider}/{code}": {
            "get": _api(
                {
                    "operationId": "explainError",
                    "summary": "What a provider error code means and how to fix it",
                    "parameters": [
                        _path_param("provider", "imessage_bridge, twilio, sendgrid, google"),
                        _path_param("code", "the provider's code or a healthd code"),
                    ],
                },
                {"200": _ok("CatalogEntry"), "404": _problem("Unknown code")},
            )
        },
        "/api/v1/incidents": {
            "get": _api(
                {
                    "operationId": "listIncidents",
                    "summary": "Open incidents first, then recently resolved ones",
                    "description": "A tenant token sees only incidents of its own tenant.",
                    "parameters": [
                        _query_param(
                            "limit",
                            {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                            "at most this many",
                        ),
                        _query_param(
                            "open", {"type": "boolean"}, "true: only open; false: only resolved"
                        ),
                    ],
                },
                {"200": _ok("IncidentList")},
            )
        },
        "/api/v1/silences": {
            "get": _api(
                {
                    "operationId": "listSilences",
                    "summary": "Run-time silences in force (admin only)",
                    "description": "A tenant token gets 404, as for a path that does not exist.",
                },
                {"200": _ok("SilenceList"), "404": _ADMIN_ONLY},
            ),
            "post": _api(
                {
                    "operationId": "createSilence",
                    "summary": "Silence rules for a while (admin only); resolves still go out",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/SilenceRequest"}
                            }
                        },
                    },
                },
                {
                    "201": _ok("Silence", "Created"),
                    "404": _ADMIN_ONLY,
                    "409": _problem("A silence of that name is in force"),
                },
            ),
        },
        "/api/v1/silences/{name}": {
            "delete": _api(
                {
                    "operationId": "deleteSilence",
                    "summary": "End a silence now (admin only)",
                    "parameters": [
                        {
                            "name": "name",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                },
                {"204": {"description": "Deleted"}, "404": _ADMIN_ONLY},
            )
        },
    }


def _silence_schemas() -> dict[str, Any]:
    """From the pydantic models that validate and store silences, so they cannot drift."""
    # Imported here: healthd.api.silences imports this package's app module.
    from healthd.alerts.settings import MaintenanceWindow
    from healthd.api.silences import SilenceRequest

    silence = MaintenanceWindow.model_json_schema(mode="serialization")
    silence["properties"] |= {
        "created_by": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
    }
    silence["required"] = [*silence["required"], "created_by", "created_at"]
    silence.pop("additionalProperties", None)
    return {
        "SilenceRequest": SilenceRequest.model_json_schema(),
        "Silence": silence,
        "SilenceList": {
            "type": "object",
            "required": ["silences", "count"],
            "properties": {
                "silences": {"type": "array", "items": {"$ref": "#/components/schemas/Silence"}},
                "count": {"type": "integer", "minimum": 0},
            },
        },
    }


@cache
def openapi_document(
    *, health_require_token: bool = False, metrics_require_token: bool = False
) -> dict[str, Any]:
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
            "schemas": {**_schemas(), **_silence_schemas()},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": _BEARER,
        "paths": _paths(health_require_token, metrics_require_token),
    }

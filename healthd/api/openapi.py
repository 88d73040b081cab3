"""The OpenAPI 3.1 description of healthd's HTTP API, served at /openapi.json.

Written by hand beside the handlers in `app.py`; `tests/api` checks answers against it, so
a handler that drifts from its description fails a test.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from healthd import __version__
from healthd.model import Category, Status

_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}


def _schemas() -> dict[str, Any]:
    finding = {
        "type": "object",
        "required": ["check", "status", "code", "category", "summary", "remediation"],
        "properties": {
            "check": {"type": "string"},
            "status": {"type": "string", "enum": [s.value for s in Status]},
            "code": {"type": "string", "examples": ["twilio.auth_invalid"]},
            "provider_code": {"type": ["string", "null"], "examples": ["20003"]},
            "category": {"type": "string", "enum": [c.value for c in Category]},
            "summary": {"type": "string"},
            "remediation": {"type": "string"},
            "count": {"type": ["integer", "null"]},
            "examples": {"type": "array", "items": {"type": "string"}},
            "network_error": {"type": "boolean"},
        },
    }
    integration = {
        "type": "object",
        "required": ["id", "name", "provider", "tenant", "status", "findings", "problems"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "provider": {"type": "string"},
            "tenant": {"type": "string"},
            "status": {"type": "string", "enum": [s.value for s in Status]},
            "since": _NULLABLE_TIME,
            "last_checked": _NULLABLE_TIME,
            "last_success": _NULLABLE_TIME,
            "unreachable_since": _NULLABLE_TIME,
            "last_result_status": {
                "type": ["string", "null"],
                "enum": [*[s.value for s in Status], None],
            },
            "consecutive_failures": {"type": "integer", "minimum": 0},
            "problems": {"type": "array", "items": {"$ref": "#/components/schemas/Finding"}},
            "findings": {"type": "array", "items": {"$ref": "#/components/schemas/Finding"}},
            "fresh": {"type": "boolean", "description": "live checks only: the probe finished"},
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
                "count": {"type": "integer"},
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
            "required": ["dedup_key", "rule", "summary", "opened_at", "open"],
            "properties": {
                "dedup_key": {"type": "string"},
                "rule": {"type": "string"},
                "summary": {"type": "string"},
                "opened_at": {"type": "string", "format": "date-time"},
                "resolved_at": _NULLABLE_TIME,
                "open": {"type": "boolean"},
            },
        },
        "IncidentList": {
            "type": "object",
            "required": ["incidents", "count"],
            "properties": {
                "incidents": {"type": "array", "items": {"$ref": "#/components/schemas/Incident"}},
                "count": {"type": "integer"},
            },
        },
        "Problem": {
            "type": "object",
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


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


_AUTH_ERRORS = {"401": _problem("Missing or unknown bearer token")}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}


@cache
def openapi_document() -> dict[str, Any]:
    status_enum = [s.value for s in Status]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "healthd status API",
            "version": __version__,
            "description": (
                "Live status of every connected messaging integration, what is failing, "
                "and how to fix it. A tenant token sees only its own tenant."
            ),
        },
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/integrations": {
                "get": {
                    "operationId": "listIntegrations",
                    "summary": "Integrations with their status and findings",
                    "parameters": [
                        {"name": "tenant", "in": "query", "schema": {"type": "string"}},
                        {"name": "provider", "in": "query", "schema": {"type": "string"}},
                        {
                            "name": "status",
                            "in": "query",
                            "schema": {"type": "string", "enum": status_enum},
                        },
                    ],
                    "responses": {
                        "200": _ok("IntegrationList"),
                        "400": _problem("Bad query parameter"),
                        **_AUTH_ERRORS,
                    },
                }
            },
            "/api/v1/integrations/{id}": {
                "get": {
                    "operationId": "getIntegration",
                    "summary": "One integration",
                    "parameters": [_ID],
                    "responses": {
                        "200": _ok("Integration"),
                        "404": _problem("No such integration for this token"),
                        **_AUTH_ERRORS,
                    },
                }
            },
            "/api/v1/integrations/{id}/check": {
                "post": {
                    "operationId": "checkIntegration",
                    "summary": "Run the integration's probe now and answer with the fresh result",
                    "parameters": [_ID],
                    "responses": {
                        "200": _ok("IntegrationList"),
                        "404": _problem("No such integration for this token"),
                        "429": _problem("Too many live checks; see Retry-After"),
                        **_AUTH_ERRORS,
                    },
                }
            },
            "/api/v1/tenants/{tenant}/check": {
                "post": {
                    "operationId": "checkTenant",
                    "summary": "Run every probe of a tenant now, in parallel",
                    "parameters": [
                        {
                            "name": "tenant",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": _ok("IntegrationList"),
                        "404": _problem("No integrations for this tenant and token"),
                        "429": _problem("Too many live checks; see Retry-After"),
                        **_AUTH_ERRORS,
                    },
                }
            },
            "/api/v1/errors/{provider}/{code}": {
                "get": {
                    "operationId": "explainError",
                    "summary": "What a provider error code means and how to fix it",
                    "parameters": [
                        {
                            "name": "provider",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "code",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": _ok("CatalogEntry"),
                        "404": _problem("Unknown code"),
                        **_AUTH_ERRORS,
                    },
                }
            },
            "/api/v1/incidents": {
                "get": {
                    "operationId": "listIncidents",
                    "summary": "Open and recent incidents (pages)",
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                        }
                    ],
                    "responses": {
                        "200": _ok("IncidentList"),
                        "400": _problem("Bad query parameter"),
                        **_AUTH_ERRORS,
                    },
                }
            },
        },
    }

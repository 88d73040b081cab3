"""What the status API answers: healthd's objects as the bodies of `schemas.py`, and query checks.

A view is built from the runner's in-memory state and latest result; it carries findings
(code, summary, fix) and never the integration's credentials or options, so nothing a
probe was configured with can leak through the API. Query parameters are checked here,
each rejection naming the parameter and what it accepts.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from aiohttp import web
from multidict import MultiMapping
from pydantic import BaseModel

from healthd.api import schemas
from healthd.api.auth import Principal
from healthd.api.problems import ApiProblem, shown
from healthd.errors import NotFoundError
from healthd.model import (
    Finding,
    Incident,
    Integration,
    IntegrationState,
    ProbeResult,
    Status,
    Transition,
)

# The same rule config.py applies to `integrations[].tenant`.
TENANT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
STATUSES = tuple(s.value for s in Status)
# `GET /api/v1/incidents?limit=`: its default and its largest value.
INCIDENTS_DEFAULT, INCIDENTS_MAX = 50, 500
# Distinct findings whose answers are kept (`finding_view`); a few hundred bytes each.
FINDING_VIEWS = 4096
# Findings that say nothing is wrong; the others are an integration's `problems`.
NOT_PROBLEMS = frozenset({Status.OK, Status.UNKNOWN})


def integration_view(
    integration: Integration, state: IntegrationState | None, result: ProbeResult | None
) -> schemas.Integration:
    findings = [finding_view(f) for f in result.findings] if result else []
    return schemas.Integration(
        id=integration.id,
        name=integration.name,
        provider=integration.provider,
        provider_name=integration.display_name,
        tenant=integration.tenant,
        status=status_of(state),
        since=state.since if state else None,
        last_checked=state.last_checked if state else None,
        last_success=state.last_success if state else None,
        unreachable_since=state.unreachable_since if state else None,
        last_result_status=result.status if result else None,
        consecutive_failures=state.consecutive_failures if state else 0,
        problems=[f for f in findings if f.status not in NOT_PROBLEMS],
        findings=findings,
    )


@functools.lru_cache(maxsize=FINDING_VIEWS)
def finding_view(finding: Finding) -> schemas.Finding:
    """A finding's answer, validated once per distinct finding (both are frozen): a run
    mostly finds what the run before it found, a healthy bridge's findings are the same
    run after run, and validating findings was two thirds of building a view (profiled:
    bench/RESULTS.md, issue 11 session 5). Findings are redacted before they are kept."""
    return schemas.Finding.model_validate(finding)


def detail_view(
    view: schemas.Integration, transitions: Sequence[Transition]
) -> schemas.IntegrationDetail:
    """One integration's view with its recent history (the store's, newest first)."""
    history = [schemas.Transition.model_validate(t) for t in transitions]
    return schemas.IntegrationDetail(**dict(view), transitions=history)


def visible_integration(
    integrations: Mapping[str, Integration], principal: Principal, integration_id: str
) -> Integration:
    """The integration of that id, if `principal` may see it. Another tenant's id raises
    exactly what an unknown id raises, so an answer never tells that it exists."""
    integration = integrations.get(integration_id)
    if integration is None or not principal.may_see(integration.tenant):
        raise NotFoundError(f"no integration by the id of {shown(integration_id)}")
    return integration


def answer(body: BaseModel, status: int = 200) -> web.Response:
    """A JSON answer from its body model: the shape `/openapi.json` describes."""
    return web.Response(status=status, text=body.model_dump_json(), content_type="application/json")


def status_of(state: IntegrationState | None) -> Status:
    return state.status if state else Status.UNKNOWN


class ViewCache:
    """Each integration's view as JSON text, rebuilt only when its state or result changes.

    The runner replaces an integration's state and result objects on every run (they are
    frozen), so identity tells whether the cached text is current. At 10,000 integrations
    the full list is then a join of cached strings instead of 10,000 dicts serialised on
    every request, which holds the event loop that also runs the probes.
    """

    def __init__(
        self,
        states: Mapping[str, IntegrationState],
        results: Mapping[str, ProbeResult],
    ) -> None:
        self._states = states
        self._results = results
        self._cache: dict[
            str, tuple[Integration, IntegrationState | None, ProbeResult | None, str]
        ] = {}

    def text(self, integration: Integration) -> str:
        state = self._states.get(integration.id)
        result = self._results.get(integration.id)
        hit = self._cache.get(integration.id)
        if hit is not None and hit[0] is integration and hit[1] is state and hit[2] is result:
            return hit[3]
        text = integration_view(integration, state, result).model_dump_json()
        self._cache[integration.id] = (integration, state, result, text)
        return text

    def forget(self, integration_id: str) -> None:
        """An integration removed at run time: its text goes with it."""
        self._cache.pop(integration_id, None)

    def status(self, integration: Integration) -> Status:
        return status_of(self._states.get(integration.id))


def incident_view(incident: Incident) -> schemas.Incident:
    details = incident.details
    return schemas.Incident(
        dedup_key=incident.dedup_key,
        rule=incident.rule,
        summary=incident.summary,
        opened_at=incident.opened_at,
        resolved_at=incident.resolved_at,
        open=incident.is_open,
        integration=_str_or_none(details.get("integration")),
        provider=_str_or_none(details.get("provider")),
        tenant=_str_or_none(details.get("tenant")),
        # Seed 000: while the bridge is down, these tenants' iMessages sit instead of
        # falling back to SMS, because they have no working Twilio integration.
        tenants_without_sms_fallback=[
            str(t) for t in details.get("tenants_without_sms_fallback", [])
        ],
    )


class Query:
    """The query string of one request, checked parameter by parameter."""

    def __init__(self, query: MultiMapping[str], allowed: Collection[str]) -> None:
        for key in query:
            if key not in allowed:
                known = ", ".join(sorted(allowed)) or "none"
                raise ApiProblem(
                    400, f"unknown query parameter {shown(key)}; this path takes: {known}"
                )
            if len(query.getall(key)) > 1:
                raise ApiProblem(400, f"query parameter {key!r} may be given only once")
        self._query = query

    def get(self, key: str) -> str | None:
        return self._query.get(key)

    def choice(self, key: str, choices: Collection[str], what: str = "") -> str | None:
        value = self._query.get(key)
        if value is not None and value not in choices:
            raise ApiProblem(
                400,
                f"{key} must be one of {', '.join(sorted(choices)) or '(none)'}{what}, "
                f"not {shown(value)}",
            )
        return value

    def tenant(self, key: str = "tenant") -> str | None:
        value = self._query.get(key)
        if value is not None and not TENANT_PATTERN.fullmatch(value):
            raise ApiProblem(
                400,
                f"{key} must be a tenant name (letters, digits, '_', '.', '-'; at most 100; "
                f"starting with a letter or digit), not {shown(value)}",
            )
        return value

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        text = self._query.get(key)
        if text is None:
            return default
        if (
            not (text.isascii() and text.isdigit() and len(text) <= 9)
            or not low <= int(text) <= high
        ):
            raise ApiProblem(
                400, f"{key} must be a whole number from {low} to {high}, not {shown(text)}"
            )
        return int(text)

    def boolean(self, key: str) -> bool | None:
        value = self.choice(key, ("true", "false"))
        return None if value is None else value == "true"


async def json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object; anything else (not UTF-8, not JSON, nested past what the
    parser recurses into, another JSON value) is the caller's mistake, a 400."""
    try:
        # Decoded here, not by `request.json()`: a `charset` in the Content-Type that Python
        # does not know would raise LookupError there.
        body = json.loads((await request.read()).decode("utf-8"))
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError included
        raise ApiProblem(400, "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ApiProblem(400, "the body must be a JSON object")
    return body


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)

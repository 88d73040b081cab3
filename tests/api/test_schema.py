"""schemathesis against `/openapi.json` of a running daemon: no 5xx, every answer as described.

The schema is loaded from the live daemon (not from the module), so what is checked is
what the daemon serves. Valid and invalid inputs are generated for every operation, with
an admin token and with a tenant token; each case runs schemathesis's own checks (no
server error, status code, content type, headers and body as documented, invalid input
rejected with a 4xx). The number of examples is kept small so the run stays bounded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from pydantic import ValidationError
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from healthd.api.openapi import openapi_document
from healthd.api.schemas import DURATION_PATTERN, SilenceRequest
from healthd.durations import parse_duration
from healthd.sim.app import SimulatorThread
from tests.api.conftest import ACME_TOKEN, DaemonThread, auth, fleet
from tests.conftest import ADMIN_TOKEN, base_config

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def daemon(sim_thread: SimulatorThread, module_env: pytest.MonkeyPatch) -> Iterator[DaemonThread]:
    sim_thread.client().reset()
    doc = base_config(sim_thread, fleet(sim_thread))
    doc["api"] = {**doc["api"], "check_rate_limit": 100_000}
    with DaemonThread(doc) as running:
        yield running


@pytest.fixture(scope="module")
def live_schema(daemon: DaemonThread) -> Any:
    return schemathesis.openapi.from_url(f"{daemon.url}/openapi.json")


def operations(document: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((path, method) for path, ops in document["paths"].items() for method in ops)


# The operations as this module's daemon describes them (its settings are the defaults).
OPERATIONS = operations(openapi_document())


def test_the_live_document_has_exactly_the_operations_tested_here(live_schema: Any) -> None:
    assert operations(live_schema.raw_schema) == OPERATIONS


SEMANTIC_VALIDATION = {
    ("/api/v1/silences", "post"),
    # A schema cannot say what each provider's options and credentials are (the probe's
    # own model), nor that a registry key is configured: a valid-looking body may get 422.
    ("/api/v1/integrations/{id}", "put"),
    ("/api/v1/tenants/{tenant}/integrations", "put"),
    # A cursor is one the API handed out (`next_cursor`), which no schema can say; nor can
    # it say that `ids` goes without `limit` and `cursor`.
    ("/api/v1/integrations", "get"),
    ("/api/v1/history", "get"),
    ("/api/v1/incidents", "get"),
    ("/api/v1/silences", "get"),
}


def cases(document: dict[str, Any]) -> list[tuple[str, str, GenerationMode]]:
    """Every operation with valid input; those with query parameters with invalid input too.

    (A path parameter is any string, and an operation without parameters has no invalid
    input: schemathesis cannot generate negative cases for those.)
    """
    out = []
    for path, method in operations(document):
        out.append((path, method, GenerationMode.POSITIVE))
        params = document["paths"][path][method].get("parameters", [])
        if any(p["in"] == "query" for p in params):
            out.append((path, method, GenerationMode.NEGATIVE))
    return out


@pytest.mark.parametrize(("path", "method", "mode"), cases(openapi_document()), ids=str)
def test_every_answer_conforms_to_the_openapi_document(
    live_schema: Any, daemon: DaemonThread, path: str, method: str, mode: GenerationMode
) -> None:
    operation = live_schema[path][method]
    # Creating a silence checks more than a schema can say (selectors must name known
    # integrations, tenants and providers; the end lies ahead, within 30 days), so a
    # schema-valid body may rightly get a 400 there; every other check still applies.
    excluded = [positive_data_acceptance] if (path, method) in SEMANTIC_VALIDATION else []

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        for token in (ADMIN_TOKEN, ACME_TOKEN):
            case.call_and_validate(
                base_url=daemon.url, headers=auth(token), timeout=30, excluded_checks=excluded
            )

    check()


@pytest.mark.parametrize(
    ("path", "method", "parameters"),
    [
        ("/api/v1/integrations/{id}", "get", {"id": iid})
        for iid in ("bridge-acme1", "bridge-globex1")
    ]
    + [
        ("/api/v1/integrations/{id}/check", "post", {"id": "bridge-acme1"}),
        ("/api/v1/integrations/{id}/history", "get", {"id": "bridge-acme1"}),
        ("/api/v1/tenants/{tenant}/check", "post", {"tenant": "acme"}),
        (
            "/api/v1/errors/{provider}/{code}",
            "get",
            {"provider": "healthd", "code": "healthd.probe_timeout"},
        ),
        ("/static/{name}", "get", {"name": "status.js"}),
        ("/static/{name}", "get", {"name": "status.css"}),
    ],
    ids=str,
)
def test_answers_for_existing_ids_conform_too(
    live_schema: Any, daemon: DaemonThread, path: str, method: str, parameters: dict[str, str]
) -> None:
    """Random ids rarely exist; these cases make sure the 200 answers are checked as well."""
    case = live_schema[path][method].Case(path_parameters=parameters)
    for token in (ADMIN_TOKEN, ACME_TOKEN):
        case.call_and_validate(base_url=daemon.url, headers=auth(token), timeout=30)


def test_every_silence_body_the_document_allows_is_one_the_server_reads(live_schema: Any) -> None:
    """Schema-valid means valid to `SilenceRequest` too (schemathesis's ST202, found once
    for `duration`: the document said ISO 8601, `P2W`, which healthd does not read).

    The checks no schema can state (exactly one of ends_at and duration, an end ahead and
    within 30 days, selectors naming known things) are the handler's, not the model's.
    """
    operation = live_schema["/api/v1/silences"]["post"]

    @settings(
        max_examples=200,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
    def check(case: Any) -> None:
        try:
            SilenceRequest.model_validate(case.body)
        except ValidationError as exc:
            # Past what a timedelta holds (`99999999999d`): longer than 30 days, a 400 that
            # says so (tests/api/test_malformed.py), as is `31d`. Nothing else may fail.
            assert all("too long" in e["msg"] for e in exc.errors()), exc

    check()


@pytest.mark.parametrize("text", ["30m", "1h30m", "500ms", "2d", " 90 ", "1.5h", "45"])
def test_the_documented_duration_pattern_admits_what_healthd_reads(text: str) -> None:
    assert re.fullmatch(DURATION_PATTERN, text)
    assert parse_duration(text).total_seconds() > 0

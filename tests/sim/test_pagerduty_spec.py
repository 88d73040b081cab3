"""The PagerDuty simulator checked against PagerDuty's published Events API v2 spec.

Required fields, enums, paths and response shapes are read from the spec file, so a change
upstream (copied into shared/specs) shows up here instead of drifting silently.
"""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import urlsplit

import pytest

from healthd.sim.pagerduty import EVENT_ACTIONS, SEVERITIES, PagerDutySim
from tests._shared import shared_file

# Read while collecting (the cases are the spec's), so a missing spec skips the module.
SPEC_PATH = shared_file("specs", "pagerduty", "events-v2.openapiv3.json", module=True)
SPEC: dict[str, Any] = json.loads(SPEC_PATH.read_text())


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = SPEC
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def violations(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """A minimal JSON-schema check: type, required, properties, items, enum."""
    schema = resolve(schema)
    types = {"object": dict, "array": list, "string": str}
    kind = schema.get("type")
    if kind in types and not isinstance(value, types[kind]):
        return [f"{where} is not {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}={value!r} not in {schema['enum']}"]
    required = schema.get("required", []) if isinstance(value, dict) else []
    found = [f"{where}.{f} missing" for f in required if f not in value]
    for name, sub in schema.get("properties", {}).items():
        if isinstance(value, dict) and name in value:
            found += violations(value[name], sub, f"{where}.{name}")
    if kind == "array":
        for i, item in enumerate(value):
            found += violations(item, schema.get("items", {}), f"{where}[{i}]")
    return found


def operation(path: str) -> dict[str, Any]:
    op: dict[str, Any] = SPEC["paths"][path]["post"]
    return op


def request_schema(path: str) -> dict[str, Any]:
    return resolve(operation(path)["requestBody"]["content"]["application/json"]["schema"])


def response_schema(path: str, status: str) -> dict[str, Any]:
    response = resolve(operation(path)["responses"][status])
    return resolve(response["content"]["application/json"]["schema"])


def examples(path: str) -> list[dict[str, Any]]:
    content = operation(path)["requestBody"]["content"]["application/json"]
    return [copy.deepcopy(e["value"]) for e in content["examples"].values()]


def server_path(path: str) -> str:
    """Spec paths are relative to the server URL (`https://events.pagerduty.com/v2`)."""
    return urlsplit(SPEC["servers"][0]["url"]).path + path


EVENT, CHANGE = "/enqueue", "/change/enqueue"
SPEC_PATHS = [EVENT, CHANGE]


async def post(sim, http, path, body):
    async with http.post(f"{sim.http_url}{server_path(path)}", json=body) as response:
        return response.status, await response.json()


def test_simulator_serves_exactly_the_spec_paths():
    served = {(d.method, d.path) for d in PagerDutySim().routes()}
    assert served == {("POST", server_path(p)) for p in SPEC["paths"]}


def test_event_action_enum_is_the_specs():
    schema = request_schema(EVENT)["properties"]["event_action"]
    assert set(EVENT_ACTIONS) == set(schema["enum"])


def test_severity_enum_is_the_specs():
    payload = resolve(request_schema(EVENT)["properties"]["payload"])
    assert set(SEVERITIES) == set(payload["properties"]["severity"]["enum"])


@pytest.mark.parametrize("path", SPEC_PATHS)
async def test_spec_examples_are_accepted_with_a_success_body(sim, http, path):
    for body in examples(path):
        status, answer = await post(sim, http, path, body)
        assert status == 202, answer
        assert violations(answer, response_schema(path, "202")) == []


def required_field_cases() -> list[tuple[str, str, tuple[str, ...]]]:
    """(spec path, a description, the key path to delete from the example) per required field."""
    cases = []
    for path in SPEC_PATHS:
        schema = request_schema(path)
        for field in schema["required"]:
            cases.append((path, field, (field,)))
        payload = resolve(schema["properties"]["payload"])
        for field in payload["required"]:
            cases.append((path, f"payload.{field}", ("payload", field)))
        for listed in ("links", "images"):
            for field in resolve(schema["properties"][listed])["items"]["required"]:
                cases.append((path, f"{listed}[0].{field}", (listed, 0, field)))
    return cases


@pytest.mark.parametrize(
    ("path", "field", "keys"),
    required_field_cases(),
    ids=[c[1] + " " + c[0] for c in required_field_cases()],
)
async def test_each_required_field_of_the_spec_is_enforced(sim, http, path, field, keys):
    body = examples(path)[0]
    node = body
    for key in keys[:-1]:
        node = node[key]
    del node[keys[-1]]
    status, answer = await post(sim, http, path, body)
    assert status == 400
    assert any(field in error for error in answer["errors"]), answer["errors"]


@pytest.mark.parametrize("action", request_schema(EVENT)["properties"]["event_action"]["enum"])
async def test_each_event_action_of_the_spec_is_accepted(sim, http, action):
    body = examples(EVENT)[0] | {"event_action": action}
    status, _ = await post(sim, http, EVENT, body)
    assert status == 202


async def test_event_action_outside_the_spec_enum_is_rejected(sim, http):
    body = examples(EVENT)[0] | {"event_action": "snooze"}
    status, _ = await post(sim, http, EVENT, body)
    assert status == 400


def error_schema() -> dict[str, Any]:
    return resolve(
        SPEC["components"]["responses"]["Error"]["content"]["application/json"]["schema"]
    )


async def test_invalid_event_body_matches_the_spec_error_schema(sim, http):
    status, answer = await post(sim, http, EVENT, {"event_action": "trigger"})
    assert status == 400
    assert violations(answer, error_schema()) == []


async def test_unparseable_body_matches_the_spec_error_example(sim, http):
    async with http.post(f"{sim.http_url}{server_path(EVENT)}", data=b"not json") as response:
        answer = await response.json()
    example = SPEC["components"]["responses"]["Error"]["content"]["application/json"]["examples"]
    assert answer == example["response"]["value"]


async def test_server_error_body_matches_the_spec_error_schema(sim, http):
    sim.provider("pagerduty").set_scenario("server_error")
    status, answer = await post(sim, http, EVENT, examples(EVENT)[0])
    assert status == 500
    assert violations(answer, response_schema(EVENT, "5XX")) == []

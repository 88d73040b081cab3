"""Tenant isolation as a property: random callers, tenants and ids through every endpoint.

The fleet has tenants whose names nearly collide (`acme`, `Acme`, `acme.eu`), each with
its own token, and one failing paging bridge per tenant so incidents exist. For any
request, a tenant token:

- never gets another tenant's integration or incident in an answer;
- gets, for another tenant's integration id or tenant name, exactly the answer an id or
  tenant that does not exist gets (same status, same headers that matter, same body with
  the name swapped), so answers cannot be used to learn what exists elsewhere.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from healthd.sim.app import SimulatorThread
from tests.api.conftest import Answer, DaemonThread, sync_call
from tests.conftest import ADMIN_TOKEN, base_config, bridge

pytestmark = pytest.mark.e2e

TENANTS = ("acme", "Acme", "acme.eu", "globex", "g-1")
TOKENS = {t: f"token-for-{t}-0123456789abcdef" for t in TENANTS}
IDS = {f"bridge-{t}-{n}": t for t in TENANTS for n in (1, 2)}
FAILING = [f"{t}-1" for t in TENANTS]  # sim targets of the failing, paging bridges


def _env_name(tenant: str) -> str:
    return f"HEALTHD_ISO_TOKEN_{TENANTS.index(tenant)}"


@pytest.fixture(scope="module")
def daemon(sim_thread: SimulatorThread, module_env: pytest.MonkeyPatch) -> Iterator[DaemonThread]:
    client = sim_thread.client()
    client.reset()
    for target in FAILING:
        client.set_scenario("imessage_bridge", "auth_fail", target=target)
    tokens = [{"name": "ops", "role": "admin", "token": "env:HEALTHD_TEST_ADMIN_TOKEN"}]
    for tenant, token in TOKENS.items():
        module_env.setenv(_env_name(tenant), token)
        tokens.append(
            {"name": f"{tenant}-ui", "tenant": tenant, "token": f"env:{_env_name(tenant)}"}
        )
    integrations = [
        bridge(sim_thread, iid.removeprefix("bridge-"), tenant=tenant, page=True)
        for iid, tenant in IDS.items()
    ]
    doc = base_config(
        sim_thread,
        integrations,
        api={"tokens": tokens, "check_rate_limit": 100_000},
        defaults={"failure_threshold": 1, "timeout": "2s"},
    )
    with DaemonThread(doc) as running:
        yield running
    client.reset()


# -- what a request is ----------------------------------------------------------------------

odd_text = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40)
any_id = st.one_of(st.sampled_from(sorted(IDS)), odd_text)
any_tenant = st.one_of(st.sampled_from(TENANTS), odd_text)


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


ENDPOINTS: dict[str, tuple[str, str]] = {
    "get": ("GET", "/api/v1/integrations/{id}"),
    "check": ("POST", "/api/v1/integrations/{id}/check"),
    "tenant_check": ("POST", "/api/v1/tenants/{tenant}/check"),
    "list": ("GET", "/api/v1/integrations?tenant={tenant}"),
    "list_all": ("GET", "/api/v1/integrations"),
    "incidents": ("GET", "/api/v1/incidents?limit=500"),
    "history": ("GET", "/api/v1/integrations/{id}/history?window=90d"),
    "incident_history": ("GET", "/api/v1/incidents/history?limit=500&integration={id}"),
    "tenant_incident_history": ("GET", "/api/v1/incidents/history?tenant={tenant}"),
    "history_summary": ("GET", "/api/v1/history"),
    "explain": ("GET", "/api/v1/errors/imessage_bridge/{id}"),
    "me": ("GET", "/api/v1/me"),
}


def request(daemon: DaemonThread, endpoint: str, token: str | None, value: str) -> Answer:
    method, template = ENDPOINTS[endpoint]
    return sync_call(daemon.url, method, template.format(id=_q(value), tenant=_q(value)), token)


def owned_by_others(caller: str, body: Any) -> list[str]:
    """Tenants other than `caller` that an answer's integrations or incidents belong to."""
    items = [*body.get("integrations", []), *body.get("incidents", [])]
    if "tenant" in body and "id" in body:  # one integration
        items.append(body)
    return [i["tenant"] for i in items if i.get("tenant") not in (caller, None)]


def normalised(answer: Answer, value: str) -> tuple[int, str, str]:
    """Status, content type and body with the asked-for name replaced by a placeholder."""
    body = answer.text
    for shown in (json.dumps(repr(value))[1:-1], repr(value)):
        body = body.replace(shown, "<asked>")
    return answer.status, answer.content_type, body


def missing_like(value: str) -> str:
    """A name nobody has, of the same shape (an id for ids, a tenant for tenants)."""
    return value + "-nobody"


# -- the properties -------------------------------------------------------------------------

CHECKS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@CHECKS
@given(
    caller=st.sampled_from(TENANTS),
    endpoint=st.sampled_from(sorted(ENDPOINTS)),
    value=st.one_of(any_id, any_tenant),
)
def test_a_tenant_token_never_sees_another_tenants_data(
    daemon: DaemonThread, caller: str, endpoint: str, value: str
) -> None:
    answer = request(daemon, endpoint, TOKENS[caller], value)

    assert answer.status < 500, answer.text
    if answer.content_type == "application/json":
        assert owned_by_others(caller, answer.json) == []
    else:
        assert answer.content_type == "application/problem+json"


@CHECKS
@given(
    caller=st.sampled_from(TENANTS),
    endpoint=st.sampled_from(["get", "check", "explain", "history"]),
    target=st.sampled_from(sorted(IDS)),
)
def test_another_tenants_id_answers_exactly_like_an_id_that_does_not_exist(
    daemon: DaemonThread, caller: str, endpoint: str, target: str
) -> None:
    if IDS[target] == caller:
        return
    other = request(daemon, endpoint, TOKENS[caller], target)
    missing = request(daemon, endpoint, TOKENS[caller], missing_like(target))

    assert other.status == 404
    assert normalised(other, target) == normalised(missing, missing_like(target))


@CHECKS
@given(
    caller=st.sampled_from(TENANTS),
    endpoint=st.sampled_from(["tenant_check", "list", "tenant_incident_history"]),
    target=st.sampled_from(TENANTS),
)
def test_another_tenant_answers_exactly_like_a_tenant_that_does_not_exist(
    daemon: DaemonThread, caller: str, endpoint: str, target: str
) -> None:
    if target == caller:
        return
    other = request(daemon, endpoint, TOKENS[caller], target)
    missing = request(daemon, endpoint, TOKENS[caller], missing_like(target))

    assert other.status in (200, 404)
    assert normalised(other, target) == normalised(missing, missing_like(target))


@CHECKS
@given(endpoint=st.sampled_from(sorted(ENDPOINTS)), value=st.one_of(any_id, any_tenant))
def test_an_unknown_token_gets_401_everywhere(
    daemon: DaemonThread, endpoint: str, value: str
) -> None:
    answer = request(daemon, endpoint, "not-a-token-" + TOKENS["acme"], value)

    assert answer.status == 401
    assert answer.content_type == "application/problem+json"


@settings(max_examples=30, deadline=None)
@given(caller=st.sampled_from(TENANTS))
def test_own_ids_answer_and_admin_sees_every_tenant(daemon: DaemonThread, caller: str) -> None:
    own = sorted(i for i, t in IDS.items() if t == caller)
    listed = request(daemon, "list_all", TOKENS[caller], "").json
    incidents = request(daemon, "incidents", TOKENS[caller], "").json
    admin = request(daemon, "list_all", ADMIN_TOKEN, "").json

    assert sorted(v["id"] for v in listed["integrations"]) == own
    summary = request(daemon, "history_summary", TOKENS[caller], "").json
    assert sorted(v["id"] for v in summary["integrations"]) == own
    assert [i["tenant"] for i in incidents["incidents"]] == [caller]
    assert all(request(daemon, "get", TOKENS[caller], i).status == 200 for i in own)
    assert {v["tenant"] for v in admin["integrations"]} == set(TENANTS)

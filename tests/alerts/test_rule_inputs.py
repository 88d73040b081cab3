"""Equal `rule_inputs` give an equal plan: the engine may skip an evaluation after a run
that changed nothing the rules read, because nothing else can change what they decide.

Worlds are generated (integrations, states, latest results, open incidents); every field
of the state and the result that is not a rule input is then perturbed, and `evaluate()`
must give the same plan.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from healthd.alerts.rules import RuleInputs, evaluate
from healthd.alerts.settings import AlertingSettings
from healthd.model import (
    Category,
    Finding,
    Incident,
    IntegrationState,
    ProbeResult,
    Status,
)
from healthd.secrets import Secret
from tests.alerts.test_rules import integration

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=30)
PROVIDERS = ("imessage_bridge", "twilio", "sendgrid")
TENANTS = ("platform", "acme", "globex")
SETTINGS = AlertingSettings.model_validate(
    {
        "pagerduty": {"routing_key": Secret("k" * 32)},
        "webhooks": {"acme": {"url": "https://hooks.acme.test/healthd", "secret": Secret("w")}},
        "rules": {"provider_outage": {"min_count": 1}},
    }
)

# The fields of the state and the result that the rules do not read, and what is left.
STATE_NOISE = ("consecutive_successes", "last_checked", "last_success", "last_result_status")
STATE_NOISE += ("reachable_streak", "disagreeing_runs")
RESULT_NOISE = ("started_at", "duration_seconds")
STATE_INPUTS = {"status", "since", "consecutive_failures", "unreachable_since"}
RESULT_INPUTS = {"status", "findings"}

times = st.one_of(st.none(), st.integers(0, 60).map(lambda m: T0 + timedelta(minutes=m)))
statuses = st.sampled_from(Status)
findings = st.builds(
    Finding,
    check=st.just("api"),
    status=statuses,
    code=st.sampled_from(("x.server_error", "x.auth_invalid", "http.timeout")),
    summary=st.just("it happened"),
    category=st.sampled_from(Category),
    network_error=st.booleans(),
)


@st.composite
def worlds(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(1, 6))
    integrations, states, results = {}, {}, {}
    for n in range(count):
        iid = f"i{n}"
        integrations[iid] = integration(
            iid,
            draw(st.sampled_from(PROVIDERS)),
            draw(st.sampled_from(TENANTS)),
            page=draw(st.booleans()),
        )
        if draw(st.booleans()):
            states[iid] = IntegrationState(
                integration_id=iid,
                status=draw(statuses),
                since=draw(times),
                consecutive_failures=draw(st.integers(0, 5)),
                unreachable_since=draw(times),
            )
        if draw(st.booleans()):
            results[iid] = ProbeResult(
                integration_id=iid,
                status=draw(statuses),
                started_at=T0,
                duration_seconds=0.1,
                findings=tuple(draw(st.lists(findings, max_size=3))),
            )
    keys = ["healthd/egress_down", *(f"healthd/provider_outage/{p}" for p in PROVIDERS)]
    for iid in integrations:
        keys += [f"healthd/{rule}/{iid}" for rule in ("bridge_unreachable", "integration_failing")]
        keys.append(f"healthd/tenant/{iid}")
    open_incidents = [
        Incident(
            dedup_key=key, rule="r", summary="s", opened_at=T0, details={"channel": "pagerduty"}
        )
        for key in draw(st.lists(st.sampled_from(keys), unique=True))
    ]
    return {
        "integrations": integrations,
        "states": states,
        "results": results,
        "open_incidents": open_incidents,
    }


noise = st.fixed_dictionaries(
    {
        "consecutive_successes": st.integers(0, 9),
        "last_checked": times,
        "last_success": times,
        "last_result_status": statuses,
        "reachable_streak": st.integers(0, 9),
        "disagreeing_runs": st.integers(0, 9),
        "started_at": times.map(lambda t: t or T0),
        "duration_seconds": st.floats(0, 30),
    }
)


def test_every_field_is_either_a_rule_input_or_perturbed_below() -> None:
    """A new field of the state or the result must be sorted into one of the two."""
    state_fields = {f.name for f in dataclasses.fields(IntegrationState)} - {"integration_id"}
    result_fields = {f.name for f in dataclasses.fields(ProbeResult)} - {"integration_id"}
    assert state_fields == STATE_INPUTS | set(STATE_NOISE)
    assert result_fields == RESULT_INPUTS | set(RESULT_NOISE)
    # RuleInputs carries the inputs (the result's status as `result_status`), nothing more.
    input_fields = {f.name for f in dataclasses.fields(RuleInputs)}
    assert input_fields == STATE_INPUTS | (RESULT_INPUTS - {"status"}) | {"result_status"}


@settings(max_examples=200, deadline=None)
@given(world=worlds(), perturbation=st.lists(noise, min_size=6, max_size=6))
def test_equal_rule_inputs_give_an_equal_plan(
    world: dict[str, Any], perturbation: list[dict[str, Any]]
) -> None:
    states = {
        iid: dataclasses.replace(state, **{k: perturbation[n][k] for k in STATE_NOISE})
        for n, (iid, state) in enumerate(world["states"].items())
    }
    results = {
        iid: dataclasses.replace(result, **{k: perturbation[n][k] for k in RESULT_NOISE})
        for n, (iid, result) in enumerate(world["results"].items())
    }
    perturbed = {**world, "states": states, "results": results}
    assert evaluate(**perturbed, settings=SETTINGS, now=NOW) == evaluate(
        **world, settings=SETTINGS, now=NOW
    )

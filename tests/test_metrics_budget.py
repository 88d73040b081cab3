"""The series budget of /metrics: fleet aggregates always, detail only where it is needed.

An ok integration costs no series of its own; one that needs attention costs at most 10,
and `detail_limit` caps how many have detail. The aggregates are checked against the
per-integration truth over arbitrary sequences of runs (hypothesis).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from healthd.metrics import (
    AlertView,
    HealthCollector,
    IntegrationSeries,
    View,
    exposition,
    needs_detail,
)
from healthd.model import IntegrationState, Status
from tests.deploy.prometheus import check_metrics
from tests.test_metrics import integration

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
PROVIDERS = ("twilio", "imessage_bridge")


def ok(iid: str) -> IntegrationState:
    return IntegrationState(
        integration_id=iid,
        status=Status.OK,
        last_checked=NOW - timedelta(seconds=30),
        last_success=NOW - timedelta(seconds=30),
        last_result_status=Status.OK,
    )


def failing(iid: str) -> IntegrationState:
    return IntegrationState(
        integration_id=iid,
        status=Status.FAILING,
        last_checked=NOW - timedelta(seconds=30),
        last_success=NOW - timedelta(hours=1),
        last_result_status=Status.FAILING,
    )


def fleet(n: int, not_ok: int, provider: str = "twilio") -> list[View]:
    """N integrations of `provider`, the first `not_ok` of them failing."""
    return [
        View(integration(f"i{k}", provider), (failing if k < not_ok else ok)(f"i{k}"), 0.2)
        for k in range(n)
    ]


def registry_of(series: IntegrationSeries, detail_limit: int = 5_000) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(
        HealthCollector(
            series,
            lambda: AlertView(pending={}, oldest_pending_age=None, open_incidents={}),
            lambda: NOW.timestamp(),
            detail_limit=detail_limit,
        )
    )
    return registry


def series_in(registry: CollectorRegistry) -> int:
    body = exposition(registry)
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


# One provider: 5 status counts, 1 overdue, 1 omitted count, and the alert gauges (pending
# for pagerduty, oldest age, build info).
FIXED_ONE_PROVIDER = 5 + 1 + 1 + 3
# A failing probed integration: success, last duration, 5 statuses, 2 timestamps.
PER_FAILING = 9


@pytest.mark.parametrize("n", [1, 10, 1_000])
@pytest.mark.parametrize("not_ok", [0, 1, 7])
def test_series_count_grows_with_the_integrations_not_ok_not_with_the_fleet(
    n: int, not_ok: int
) -> None:
    not_ok = min(n, not_ok)
    registry = registry_of(IntegrationSeries.of(fleet(n, not_ok)))
    assert series_in(registry) == FIXED_ONE_PROVIDER + PER_FAILING * not_ok


def test_a_bridge_needing_attention_adds_its_unreachable_seconds() -> None:
    state = IntegrationState(
        integration_id="b1",
        status=Status.UNREACHABLE,
        last_checked=NOW,
        last_success=NOW - timedelta(minutes=20),
        unreachable_since=NOW - timedelta(minutes=12),
        last_result_status=Status.UNREACHABLE,
    )
    registry = registry_of(IntegrationSeries.of([View(integration("b1"), state, 0.2)]))
    assert series_in(registry) == FIXED_ONE_PROVIDER + PER_FAILING + 1
    labels = {"integration": "b1", "tenant": "platform"}
    assert registry.get_sample_value("healthd_bridge_unreachable_seconds", labels) == 720


def test_the_detail_limit_caps_the_integrations_with_series_and_counts_the_rest() -> None:
    registry = registry_of(IntegrationSeries.of(fleet(100, 30)), detail_limit=10)
    assert series_in(registry) == FIXED_ONE_PROVIDER + PER_FAILING * 10
    assert registry.get_sample_value("healthd_integration_detail_omitted") == 20
    assert registry.get_sample_value("healthd_integrations", _count("twilio", "failing")) == 30


def test_under_the_limit_the_earliest_to_need_attention_keep_their_detail() -> None:
    series = IntegrationSeries.of(fleet(5, 0))
    for k in (3, 1, 4):
        series.update(View(integration(f"i{k}", "twilio"), failing(f"i{k}"), 0.2))
    details, omitted = series.detail(2)
    assert [d.view.integration.id for d in details] == ["i3", "i1"]
    assert omitted == 1


def test_bridges_keep_their_detail_first_under_the_limit() -> None:
    series = IntegrationSeries.of(fleet(3, 3))
    series.update(View(integration("bridge", "imessage_bridge"), failing("bridge"), 0.2))
    details, _ = series.detail(1)
    assert [d.view.integration.id for d in details] == ["bridge"]


def test_an_integration_that_recovers_leaves_the_detail_series() -> None:
    series = IntegrationSeries.of(fleet(3, 1))
    registry = registry_of(series)
    labels = {"integration": "i0", "provider": "twilio", "tenant": "platform"}
    assert registry.get_sample_value("healthd_probe_success", labels) == 0
    series.update(View(integration("i0", "twilio"), ok("i0"), 0.2))
    assert registry.get_sample_value("healthd_probe_success", labels) is None
    assert b'integration="i0"' not in exposition(registry)
    assert registry.get_sample_value("healthd_integrations", _count("twilio", "ok")) == 3
    assert registry.get_sample_value("healthd_integrations", _count("twilio", "failing")) == 0


def test_an_ok_integration_whose_latest_run_failed_keeps_its_detail() -> None:
    state = IntegrationState(
        integration_id="i0", status=Status.OK, last_checked=NOW, last_result_status=Status.FAILING
    )
    assert needs_detail(state)
    assert not needs_detail(ok("i0"))
    assert not needs_detail(IntegrationState(integration_id="i0"))


def test_overdue_seconds_are_how_far_the_latest_check_plus_interval_is_behind_now() -> None:
    late = IntegrationState(
        integration_id="late",
        status=Status.OK,
        last_checked=NOW - timedelta(seconds=150),
        last_result_status=Status.OK,
    )
    views = [View(integration(i, "twilio"), ok(i), 0.2) for i in ("a", "b")]
    registry = registry_of(
        IntegrationSeries.of([*views, View(integration("late", "twilio"), late, 0.2)])
    )
    overdue = registry.get_sample_value("healthd_probe_overdue_seconds", {"provider": "twilio"})
    assert overdue == 150 - 60
    on_time = registry_of(IntegrationSeries.of(views))
    assert on_time.get_sample_value("healthd_probe_overdue_seconds", {"provider": "twilio"}) == 0


def test_the_whole_exposition_passes_promtool_check_metrics() -> None:
    views = fleet(20, 5) + [View(integration("b1", "imessage_bridge"), failing("b1"), 0.1)]
    run = check_metrics(exposition(registry_of(IntegrationSeries.of(views))).decode())
    assert run.returncode == 0, run.explain()


def _count(provider: str, status: str) -> dict[str, str]:
    return {"provider": provider, "status": status}


_states = st.builds(
    IntegrationState,
    integration_id=st.just(""),
    status=st.sampled_from(Status),
    last_checked=st.none() | st.integers(0, 600).map(lambda s: NOW - timedelta(seconds=s)),
    unreachable_since=st.none() | st.just(NOW - timedelta(minutes=5)),
    last_result_status=st.sampled_from(Status),
)
# A sequence of runs: (integration number, provider, state after the run).
_runs = st.lists(st.tuples(st.integers(0, 12), st.sampled_from(PROVIDERS), _states), max_size=60)


@settings(max_examples=150, deadline=None)
@given(runs=_runs, limit=st.integers(0, 15))
def test_fleet_aggregates_equal_the_per_integration_truth(
    runs: list[tuple[int, str, IntegrationState]], limit: int
) -> None:
    series = IntegrationSeries()
    latest: dict[str, View] = {}
    for k, provider, state in runs:
        view = View(integration(f"i{k}", provider), state, 0.1)
        series.update(view)
        latest[f"i{k}"] = view
    registry = registry_of(series, detail_limit=limit)

    truth = Counter((v.integration.provider, v.state.status.value) for v in latest.values())
    for provider in {v.integration.provider for v in latest.values()}:
        for status in Status:
            got = registry.get_sample_value("healthd_integrations", _count(provider, status))
            assert got == truth[(provider, status.value)]
        checked = [
            v.state.last_checked.timestamp() + 60
            for v in latest.values()
            if v.integration.provider == provider and v.state.last_checked is not None
        ]
        overdue = registry.get_sample_value("healthd_probe_overdue_seconds", {"provider": provider})
        assert overdue == (max(0.0, NOW.timestamp() - min(checked)) if checked else None)

    wanted = {iid for iid, v in latest.items() if needs_detail(v.state)}
    details, omitted = series.detail(limit)
    shown = {d.view.integration.id for d in details}
    assert shown <= wanted
    assert len(shown) == min(limit, len(wanted))
    assert omitted == len(wanted) - len(shown)
    assert registry.get_sample_value("healthd_integration_detail_omitted") == omitted
    shown_in_body = {
        line.split(b'integration="')[1].split(b'"')[0].decode()
        for line in exposition(registry).splitlines()
        if line.startswith(b"healthd_integration_status{")
    }
    assert shown_in_body == shown

"""The state machine as scripted sequences: after each step, the counters and transitions."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from healthd.model import IntegrationState, ProbeResult, Status, Thresholds, TransitionKind
from healthd.state import step

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
DEFAULT = Thresholds()  # 3 failures to fail, 2 successes to recover


def run(
    statuses: list[Status], thresholds: Thresholds = DEFAULT, prev: IntegrationState | None = None
):
    """Feed one result per minute; return the state and transitions after each step."""
    state = prev or IntegrationState(integration_id="i1")
    history = []
    for n, status in enumerate(statuses):
        at = T0 + n * MIN
        result = ProbeResult(
            integration_id="i1", status=status, started_at=at, duration_seconds=0.01
        )
        state, transitions = step(state, result, at, thresholds)
        history.append((state, transitions))
    return history


OK, DEG, FAIL, DOWN = Status.OK, Status.DEGRADED, Status.FAILING, Status.UNREACHABLE


def test_first_good_result_is_believed_at_once() -> None:
    ((state, transitions),) = run([OK])
    assert state.status is OK
    assert [t.kind for t in transitions] == [TransitionKind.RECOVERED]


def test_new_integration_failing_stays_unknown_until_the_failure_threshold() -> None:
    history = run([FAIL, FAIL, FAIL])
    assert [s.status for s, _ in history] == [Status.UNKNOWN, Status.UNKNOWN, FAIL]


def test_becomes_failing_after_n_consecutive_bad_runs_and_not_before() -> None:
    history = run([OK, FAIL, FAIL, FAIL])
    assert [s.status for s, _ in history] == [OK, OK, OK, FAIL]
    assert [t.kind for t in history[3][1]] == [TransitionKind.FAILED]
    assert history[3][0].since == T0 + 3 * MIN


def test_one_good_run_between_failures_resets_the_failure_count() -> None:
    history = run([OK, FAIL, FAIL, OK, FAIL, FAIL])
    assert all(s.status is OK for s, _ in history)
    assert history[-1][0].consecutive_failures == 2


def test_recovers_after_m_consecutive_good_runs_only() -> None:
    history = run([OK, FAIL, FAIL, FAIL, OK, OK])
    assert [s.status for s, _ in history][3:] == [FAIL, FAIL, OK]
    assert [t.kind for t in history[5][1]] == [TransitionKind.RECOVERED]


def test_degraded_after_n_consecutive_degraded_runs_and_never_counts_as_a_failure() -> None:
    history = run([OK, DEG, DEG, DEG, DEG])
    assert [s.status for s, _ in history] == [OK, OK, OK, DEG, DEG]
    assert all(s.consecutive_failures == 0 for s, _ in history)
    assert [t.kind for t in history[3][1]] == [TransitionKind.DEGRADED]


def test_degraded_back_to_ok_after_m_consecutive_ok_runs() -> None:
    history = run([OK, DEG, DEG, DEG, OK, OK])
    assert [s.status for s, _ in history][3:] == [DEG, DEG, OK]
    assert [t.kind for t in history[5][1]] == [TransitionKind.RECOVERED]


def test_a_status_hovering_between_ok_and_degraded_stays_where_it_is() -> None:
    hovering = [OK, DEG, OK, DEG, DEG, OK, DEG, OK, DEG, DEG]
    history = run(hovering)
    assert all(s.status is OK for s, _ in history)
    assert all(t == [] for _, t in history[1:])
    degraded = run([DEG, OK, DEG, OK, OK, DEG])
    assert [s.status for s, _ in degraded] == [DEG, DEG, DEG, DEG, OK, OK]


def test_a_first_degraded_run_is_believed_at_once() -> None:
    ((state, transitions),) = run([DEG])
    assert state.status is DEG
    assert [t.kind for t in transitions] == [TransitionKind.DEGRADED]


def test_recovering_from_failing_follows_the_good_run_it_ends_on() -> None:
    history = run([OK, FAIL, FAIL, FAIL, OK, DEG])
    assert history[-1][0].status is DEG


@pytest.mark.parametrize(("n", "m"), [(1, 1), (2, 3), (5, 1)])
def test_the_degraded_debounce_uses_the_integrations_thresholds(n: int, m: int) -> None:
    thresholds = Thresholds(failure_threshold=n, success_threshold=m)
    history = run([OK] + [DEG] * n + [OK] * m, thresholds)
    statuses = [s.status for s, _ in history]
    assert statuses[n] is DEG and (n == 1 or statuses[n - 1] is OK)
    assert statuses[-1] is OK and (m == 1 or statuses[-2] is DEG)


def test_while_failing_the_status_follows_between_failing_and_unreachable() -> None:
    history = run([OK, FAIL, FAIL, FAIL, DOWN])
    assert history[-1][0].status is DOWN


def test_unreachable_since_is_the_start_of_the_first_unreachable_run() -> None:
    history = run([OK, DOWN, DOWN, DOWN])
    assert [s.unreachable_since for s, _ in history] == [None, T0 + MIN, T0 + MIN, T0 + MIN]
    assert [t.kind for t in history[1][1]] == [TransitionKind.BECAME_UNREACHABLE]


def test_a_single_answer_does_not_clear_unreachable_since() -> None:
    history = run([DOWN, DOWN, OK, DOWN])
    assert history[-1][0].unreachable_since == T0


def test_m_consecutive_answers_clear_unreachable_since() -> None:
    history = run([DOWN, DOWN, OK, OK])
    assert history[2][0].unreachable_since == T0
    assert history[3][0].unreachable_since is None
    assert [t.kind for t in history[3][1]] == [TransitionKind.BECAME_REACHABLE]


def test_an_answering_but_failing_bridge_is_reachable() -> None:
    history = run([DOWN, FAIL, FAIL])
    assert history[-1][0].unreachable_since is None


def test_last_success_is_the_latest_good_run() -> None:
    history = run([OK, DEG, FAIL])
    assert history[-1][0].last_success == T0 + MIN
    assert history[-1][0].last_checked == T0 + 2 * MIN


@pytest.mark.parametrize(("n", "m"), [(1, 1), (2, 3), (5, 1)])
def test_thresholds_come_from_the_integration(n: int, m: int) -> None:
    thresholds = Thresholds(failure_threshold=n, success_threshold=m)
    history = run([OK] + [FAIL] * n + [OK] * m, thresholds)
    statuses = [s.status for s, _ in history]
    assert statuses[n] is FAIL and statuses[n - 1] is OK
    assert statuses[-1] is OK and (m == 1 or statuses[-2] is FAIL)


def test_state_after_restart_continues_the_count() -> None:
    first = run([OK, DOWN, DOWN])
    resumed = run([DOWN], prev=first[-1][0])
    assert resumed[0][0].consecutive_failures == 3
    assert resumed[0][0].status is DOWN
    assert resumed[0][0].unreachable_since == T0 + MIN


UNK = Status.UNKNOWN


def test_an_unknown_run_moves_no_counter_and_emits_no_transition() -> None:
    history = run([OK, DOWN, DOWN, DOWN, UNK, UNK])
    before, after = history[3][0], history[-1][0]
    assert after.status is DOWN and after.since == before.since
    assert after.consecutive_failures == before.consecutive_failures == 3
    assert after.consecutive_successes == 0 and after.reachable_streak == 0
    assert after.unreachable_since == before.unreachable_since == T0 + MIN
    assert after.last_checked == before.last_checked
    assert after.last_result_status is UNK
    assert [t for _, t in history[4:]] == [[], []]


def test_unknown_runs_neither_recover_a_failing_integration_nor_clear_its_timer() -> None:
    history = run([DOWN, DOWN, DOWN, UNK, UNK, UNK, DOWN])
    assert all(s.status is DOWN for s, _ in history[2:])
    assert history[-1][0].unreachable_since == T0
    assert history[-1][0].consecutive_failures == 4


def test_unknown_runs_do_not_break_a_run_of_failures() -> None:
    history = run([OK, FAIL, FAIL, UNK, FAIL])
    assert [s.status for s, _ in history] == [OK, OK, OK, OK, FAIL]


def test_an_unknown_first_run_leaves_a_new_integration_unknown_and_unchecked() -> None:
    ((state, transitions),) = run([UNK])
    assert state.status is UNK and state.last_checked is None and transitions == []


def test_a_step_carries_over_every_field_of_the_state_it_does_not_change() -> None:
    """`step` builds states field by field (for speed): a field added to IntegrationState
    and not carried over would silently go back to its default. Every field here differs
    from its default, so a field left out shows."""
    prev = IntegrationState(
        integration_id="bridge-1",
        status=Status.FAILING,
        since=T0,
        consecutive_failures=4,
        consecutive_successes=1,
        last_checked=T0 + timedelta(minutes=1),
        last_success=T0 - timedelta(hours=1),
        unreachable_since=T0 - timedelta(minutes=30),
        last_result_status=Status.UNREACHABLE,
        reachable_streak=2,
        disagreeing_runs=1,
    )
    defaults = IntegrationState(integration_id="other")
    assert all(getattr(prev, f.name) != getattr(defaults, f.name) for f in dataclasses.fields(prev))
    unknown = ProbeResult(
        integration_id="bridge-1", status=Status.UNKNOWN, started_at=T0, duration_seconds=0.1
    )
    after, _ = step(prev, unknown, T0 + timedelta(minutes=2), Thresholds())
    assert after == dataclasses.replace(prev, last_result_status=Status.UNKNOWN)

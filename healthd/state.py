"""The per-integration state machine: a pure function from (state, result, now) to state.

Rules, with N = failure_threshold (default 3) and M = success_threshold (default 2):
- A run is bad when its status is failing or unreachable, good when ok or degraded.
- A run whose status is unknown proves nothing about the provider (`proves_nothing`): a
  probe that crashed inside healthd, a run healthd cut off for its own reasons, checks that
  were all skipped. It neither fails nor recovers the integration: no counter moves,
  `unreachable_since` and `last_checked` are kept (a probe that reads "since the last
  check" still reads from the last run that looked), no transition. Only
  `last_result_status` says the latest run was unknown. Before this rule a crash counted
  as a good run, so two crashes in a row resolved a real page.
- The effective status turns failing (or unreachable) after N consecutive bad runs, and
  back to the run's own status after M consecutive good runs. One blip never flips it.
- While bad, the effective status follows the run between failing and unreachable.
- While good, degraded is debounced like failing, so a status hovering at a threshold (a
  bounce rate at 5 %) does not send a tenant's webhook a trigger and a resolve on every
  other run: ok turns degraded after N consecutive degraded runs, degraded turns ok after
  M consecutive ok runs (`disagreeing_runs` counts them; any other run starts it over).
- The first run of a new integration is believed at once when good (nothing to debounce
  against); when bad it waits for N like any other.
- `unreachable_since` is when an unbroken run of unreachable answers began. It is kept
  through isolated good answers and cleared only after M consecutive reachable runs, so
  a bridge that answers one probe in five is still "continuously" away; the ten-minute
  page keeps counting from the first miss. Any non-unreachable run counts as reachable.

No I/O and no clock reads: the caller passes `now`, so tests script sequences by hand.
"""

from __future__ import annotations

from datetime import datetime

from healthd.model import (
    IntegrationState,
    ProbeResult,
    Status,
    Thresholds,
    Transition,
    TransitionKind,
)


def proves_nothing(result: ProbeResult) -> bool:
    """A run that says nothing about the provider either way (see the module)."""
    return result.status is Status.UNKNOWN


def step(
    prev: IntegrationState, result: ProbeResult, now: datetime, thresholds: Thresholds
) -> tuple[IntegrationState, list[Transition]]:
    if proves_nothing(result):
        return _state(prev, last_result_status=result.status), []
    raw = result.status
    bad = raw.is_bad
    failures = prev.consecutive_failures + 1 if bad else 0
    successes = 0 if bad else prev.consecutive_successes + 1
    disagreeing = prev.disagreeing_runs + 1 if _shifts(prev.status, raw) else 0
    status = _effective(prev.status, raw, failures, successes, disagreeing, thresholds)

    transitions: list[Transition] = []

    def emit(kind: TransitionKind, before: Status, after: Status) -> None:
        transitions.append(
            Transition(
                integration_id=prev.integration_id,
                kind=kind,
                at=now,
                from_status=before,
                to_status=after,
            )
        )

    if status != prev.status:
        emit(_kind(prev.status, status), prev.status, status)

    reachable_streak = 0 if raw is Status.UNREACHABLE else prev.reachable_streak + 1
    unreachable_since = prev.unreachable_since
    if raw is Status.UNREACHABLE and unreachable_since is None:
        unreachable_since = result.started_at
        emit(TransitionKind.BECAME_UNREACHABLE, prev.last_result_status, raw)
    elif unreachable_since is not None and reachable_streak >= thresholds.success_threshold:
        unreachable_since = None
        emit(TransitionKind.BECAME_REACHABLE, prev.last_result_status, raw)

    new = IntegrationState(
        integration_id=prev.integration_id,
        status=status,
        since=now if status != prev.status or prev.since is None else prev.since,
        consecutive_failures=failures,
        consecutive_successes=successes,
        disagreeing_runs=0 if status != prev.status else disagreeing,
        last_checked=now,
        last_success=now if not bad else prev.last_success,
        unreachable_since=unreachable_since,
        last_result_status=raw,
        reachable_streak=reachable_streak,
    )
    return new, transitions


def _state(prev: IntegrationState, *, last_result_status: Status) -> IntegrationState:
    """`prev` with only its latest raw status changed, built field by field: every run
    steps a state, and `dataclasses.replace` cost four times a plain construction."""
    return IntegrationState(
        integration_id=prev.integration_id,
        status=prev.status,
        since=prev.since,
        consecutive_failures=prev.consecutive_failures,
        consecutive_successes=prev.consecutive_successes,
        disagreeing_runs=prev.disagreeing_runs,
        last_checked=prev.last_checked,
        last_success=prev.last_success,
        unreachable_since=prev.unreachable_since,
        last_result_status=last_result_status,
        reachable_streak=prev.reachable_streak,
    )


_SETTLED = (Status.OK, Status.DEGRADED)


def _shifts(prev: Status, raw: Status) -> bool:
    """A run that would move a settled status between ok and degraded."""
    return prev in _SETTLED and raw in _SETTLED and raw is not prev


def _effective(
    prev: Status, raw: Status, failures: int, successes: int, disagreeing: int, t: Thresholds
) -> Status:
    if _shifts(prev, raw):
        needed = t.failure_threshold if raw is Status.DEGRADED else t.success_threshold
        return raw if disagreeing >= needed else prev
    if prev is Status.UNKNOWN:
        if not raw.is_bad:
            return raw
        return raw if failures >= t.failure_threshold else Status.UNKNOWN
    if prev.is_bad:
        if raw.is_bad:
            return raw
        return raw if successes >= t.success_threshold else prev
    if raw.is_bad:
        return raw if failures >= t.failure_threshold else prev
    return raw


def _kind(before: Status, after: Status) -> TransitionKind:
    if after.is_bad and not before.is_bad:
        return TransitionKind.FAILED
    if before.is_bad and not after.is_bad:
        return TransitionKind.RECOVERED
    if before.is_bad and after.is_bad:
        return TransitionKind.FAILED
    if after is Status.DEGRADED:
        return TransitionKind.DEGRADED
    return TransitionKind.RECOVERED

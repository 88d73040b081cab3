"""One suite, every Store implementation: MemoryStore defines the semantics, SQLite and
PostgreSQL (a real server, `tests._postgres`) keep them."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from healthd.errors import StoreError
from healthd.interfaces import Store
from healthd.model import (
    AlertEvent,
    Bucket,
    Category,
    DeliveryOutcome,
    DeliveryStage,
    EventAction,
    Finding,
    Incident,
    IncidentEventRecord,
    IncidentQuery,
    IntegrationState,
    OutboxStatus,
    ProbeResult,
    RegistryRecord,
    Status,
    Transition,
    TransitionKind,
)
from healthd.store import DAY_SPAN, HOUR_SPAN, MemoryStore, PostgresStore, Retention, SQLiteStore
from tests._stores import T0, alert_event, open_incident, opening

PLUS_TWO = timezone(timedelta(hours=2))

MakeStore = Callable[..., Awaitable[Store]]
# Builds a store (not opened); `place` is a path no other store in the test uses, and
# `database` names a database no other test uses (PostgreSQL's stores in one test share it).
Backend = Callable[[Path, Callable[[], str], Retention | None], Store]

# Every Store implementation, one row each: a new backend is one more row here.
BACKENDS = [
    pytest.param(lambda place, database, retention: MemoryStore(retention=retention), id="memory"),
    pytest.param(
        lambda place, database, retention: SQLiteStore(
            place.with_suffix(".db"), retention=retention
        ),
        id="sqlite",
    ),
    pytest.param(
        lambda place, database, retention: PostgresStore(database(), retention=retention),
        id="postgresql",
    ),
]


@pytest.fixture(params=BACKENDS)
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MakeStore]:
    backend: Backend = request.param
    databases: list[str] = []
    places = itertools.count()

    def database() -> str:
        """This test's own PostgreSQL database, made on first use (only by that backend)."""
        if not databases:
            databases.append(request.getfixturevalue("postgres_url"))
        return databases[0]

    async with opening() as open_:

        async def make(retention: Retention | None = None) -> Store:
            return await open_(backend(tmp_path / f"healthd-{next(places)}", database, retention))

        yield make


@pytest.fixture
async def store(make_store: MakeStore) -> Store:
    return await make_store()


def _result(integration_id: str = "bridge-dc1", at: datetime = T0) -> ProbeResult:
    return ProbeResult.from_findings(
        integration_id=integration_id,
        started_at=at,
        duration_seconds=0.25,
        findings=[
            Finding(
                check="auth",
                status=Status.FAILING,
                code="twilio.auth_invalid",
                summary="Twilio rejected the credentials.",
                remediation="The API key is wrong. Reconnect the integration.",
                category=Category.ACCOUNT,
                provider_code="20003",
                examples=("SM123",),
            )
        ],
    )


def _transition(n: int, integration_id: str = "bridge-dc1") -> Transition:
    return Transition(
        integration_id=integration_id,
        kind=TransitionKind.FAILED if n % 2 == 0 else TransitionKind.RECOVERED,
        at=T0 + timedelta(minutes=n),
        from_status=Status.OK,
        to_status=Status.FAILING,
    )


async def _queue(store: Store, *events: tuple[str, AlertEvent], now: datetime = T0) -> None:
    await store.apply_alerts(opened=[], resolved=[], events=events, now=now)


# -- state, results, transitions ---------------------------------------------------------


async def test_recorded_state_reads_back_equal_with_aware_datetimes(store: Store) -> None:
    state = IntegrationState(
        integration_id="bridge-dc1",
        status=Status.UNREACHABLE,
        since=datetime(2026, 3, 1, 14, 0, tzinfo=PLUS_TWO),
        consecutive_failures=4,
        consecutive_successes=0,
        last_checked=T0 + timedelta(seconds=30, microseconds=5),
        last_success=T0 - timedelta(hours=1),
        unreachable_since=T0,
        last_result_status=Status.UNREACHABLE,
        reachable_streak=1,
        disagreeing_runs=2,
    )
    await store.record_run(state, _result(), [])

    loaded = (await store.load_states())["bridge-dc1"]

    assert loaded == state
    assert loaded.since is not None and loaded.since.utcoffset() is not None


async def test_latest_result_is_the_last_run_with_its_findings(store: Store) -> None:
    state = IntegrationState(integration_id="bridge-dc1")
    await store.record_run(state, _result(at=T0), [])
    newer = _result(at=T0 + timedelta(minutes=1))
    await store.record_run(state, newer, [])

    assert await store.latest_results() == {"bridge-dc1": newer}


async def test_transitions_are_listed_newest_first_up_to_the_limit(store: Store) -> None:
    state = IntegrationState(integration_id="bridge-dc1")
    await store.record_run(state, _result(), [_transition(0), _transition(1)])
    await store.record_run(state, _result(), [_transition(2)])

    assert await store.transitions("bridge-dc1", limit=2) == [_transition(2), _transition(1)]
    assert await store.transitions("other") == []


async def test_transitions_are_listed_per_integration(store: Store) -> None:
    bridge = IntegrationState(integration_id="bridge-dc1")
    twilio = IntegrationState(integration_id="twilio-acme")
    await store.record_run(bridge, _result(), [_transition(0)])
    await store.record_run(twilio, _result("twilio-acme"), [_transition(1, "twilio-acme")])
    await store.record_run(bridge, _result(), [_transition(2)])

    assert await store.transitions("bridge-dc1") == [_transition(2), _transition(0)]
    assert await store.transitions("twilio-acme") == [_transition(1, "twilio-acme")]


async def test_transitions_of_runs_recorded_together_keep_their_order(store: Store) -> None:
    """Runs that finish at once (and may share one write) list as if recorded one by one."""
    state = IntegrationState(integration_id="bridge-dc1")

    async with asyncio.timeout(10):
        await asyncio.gather(
            *(store.record_run(state, _result(), [_transition(n)]) for n in range(3))
        )

    assert await store.transitions("bridge-dc1") == [_transition(2), _transition(1), _transition(0)]


async def test_transitions_beyond_the_retention_are_pruned(make_store: MakeStore) -> None:
    store = await make_store(Retention(transitions=3))
    state = IntegrationState(integration_id="bridge-dc1")
    await store.record_run(state, _result(), [_transition(n) for n in range(4)])
    await store.record_run(state, _result(), [_transition(4)])

    kept = await store.transitions("bridge-dc1", limit=10)

    assert kept == [_transition(4), _transition(3), _transition(2)]


async def test_transitions_are_pruned_per_integration(make_store: MakeStore) -> None:
    store = await make_store(Retention(transitions=1))
    await store.record_run(
        IntegrationState(integration_id="twilio-acme"),
        _result("twilio-acme"),
        [_transition(0, "twilio-acme")],
    )
    state = IntegrationState(integration_id="bridge-dc1")
    await store.record_run(state, _result(), [_transition(1), _transition(2)])

    assert await store.transitions("bridge-dc1") == [_transition(2)]
    assert await store.transitions("twilio-acme") == [_transition(0, "twilio-acme")]


async def test_a_retention_of_no_transitions_keeps_none(make_store: MakeStore) -> None:
    store = await make_store(Retention(transitions=0))
    state = IntegrationState(integration_id="bridge-dc1")
    await store.record_run(state, _result(), [_transition(0), _transition(1)])

    assert await store.transitions("bridge-dc1") == []


# -- incidents -----------------------------------------------------------------------------


async def test_opened_incident_is_open_until_resolved(store: Store) -> None:
    await store.apply_alerts(opened=[open_incident("bridge")], resolved=[], events=[], now=T0)
    assert await store.open_incidents() == [open_incident("bridge")]

    later = T0 + timedelta(minutes=5)
    await store.apply_alerts(opened=[], resolved=[("bridge", later)], events=[], now=later)

    assert await store.open_incidents() == []
    resolved = await _occurrences(store)
    assert [(i.dedup_key, i.resolved_at) for i in resolved] == [("bridge", later)]


async def _occurrences(store: Store) -> list[Incident]:
    """Every stored occurrence, newest first (as the incident history reads them)."""
    return [r.incident for r in await store.incident_history(IncidentQuery(limit=500))]


async def _open_and_resolve(store: Store, key: str, opened_at: datetime, minutes: int) -> None:
    """One occurrence of `key`: opened at `opened_at`, resolved `minutes` later."""
    resolved_at = opened_at + timedelta(minutes=minutes)
    await store.apply_alerts(opened=[open_incident(key, opened_at)], resolved=[], events=[], now=T0)
    await store.apply_alerts(opened=[], resolved=[(key, resolved_at)], events=[], now=T0)


async def test_a_reopened_incident_is_a_new_occurrence_and_the_earlier_one_is_kept(
    store: Store,
) -> None:
    await _open_and_resolve(store, "bridge", T0, 5)
    reopened_at = T0 + timedelta(hours=1)

    await store.apply_alerts(
        opened=[open_incident("bridge", reopened_at)], resolved=[], events=[], now=reopened_at
    )

    first = dataclasses.replace(open_incident("bridge"), resolved_at=T0 + timedelta(minutes=5))
    assert await _occurrences(store) == [open_incident("bridge", reopened_at), first]
    assert await store.open_incidents() == [open_incident("bridge", reopened_at)]


async def test_each_occurrence_keeps_its_own_resolve(store: Store) -> None:
    await _open_and_resolve(store, "bridge", T0, 5)
    await _open_and_resolve(store, "bridge", T0 + timedelta(hours=1), 10)
    # A resolve with nothing open changes no occurrence.
    await store.apply_alerts(
        opened=[], resolved=[("bridge", T0 + timedelta(hours=5))], events=[], now=T0
    )

    assert [(i.opened_at, i.resolved_at) for i in await _occurrences(store)] == [
        (T0 + timedelta(hours=1), T0 + timedelta(hours=1, minutes=10)),
        (T0, T0 + timedelta(minutes=5)),
    ]


async def test_an_incident_is_open_at_most_once(store: Store) -> None:
    await _open_and_resolve(store, "bridge", T0, 5)
    for minutes in (60, 61, 62):
        at = T0 + timedelta(minutes=minutes)
        await store.apply_alerts(
            opened=[open_incident("bridge", at)], resolved=[], events=[], now=at
        )

    assert [i.opened_at for i in await store.open_incidents()] == [T0 + timedelta(minutes=60)]
    assert len(await _occurrences(store)) == 2


async def test_resolved_occurrences_beyond_the_retention_are_pruned_never_an_open_one(
    make_store: MakeStore,
) -> None:
    store = await make_store(Retention(resolved_incidents=2))
    await store.apply_alerts(opened=[open_incident("other", T0)], resolved=[], events=[], now=T0)
    for n in range(1, 5):
        await _open_and_resolve(store, "bridge", T0 + timedelta(hours=n), 5)

    kept = await _occurrences(store)

    assert [(i.dedup_key, i.opened_at) for i in kept] == [
        ("bridge", T0 + timedelta(hours=4)),
        ("bridge", T0 + timedelta(hours=3)),
        ("other", T0),
    ]


async def test_opening_an_open_incident_keeps_its_opened_at(store: Store) -> None:
    await store.apply_alerts(opened=[open_incident("bridge")], resolved=[], events=[], now=T0)
    again = T0 + timedelta(minutes=3)

    await store.apply_alerts(
        opened=[open_incident("bridge", again)], resolved=[], events=[], now=again
    )

    assert [i.opened_at for i in await store.open_incidents()] == [T0]


# -- apply_alerts and the outbox -----------------------------------------------------------


async def test_apply_alerts_queues_the_trigger_with_its_incident(store: Store) -> None:
    await store.apply_alerts(
        opened=[open_incident("bridge")],
        resolved=[],
        events=[("pagerduty", alert_event("bridge"))],
        now=T0,
    )

    assert await store.open_incidents() == [open_incident("bridge")]
    [item] = await store.claim_due(T0)
    assert (item.channel, item.event, item.status) == (
        "pagerduty",
        alert_event("bridge"),
        OutboxStatus.SENDING,
    )
    assert (item.attempts, item.next_attempt_at, item.created_at) == (0, T0, T0)


async def test_claim_due_returns_due_rows_in_id_order_and_leaves_later_ones(
    store: Store,
) -> None:
    await _queue(store, ("pagerduty", alert_event("a")), ("pagerduty", alert_event("b")))
    await _queue(store, ("pagerduty", alert_event("c")), now=T0 + timedelta(minutes=1))

    claimed = await store.claim_due(T0)

    assert [i.event.dedup_key for i in claimed] == ["a", "b"]


async def test_claim_due_returns_at_most_limit_rows(store: Store) -> None:
    await _queue(store, *[("pagerduty", alert_event(key)) for key in "abc"])

    first = await store.claim_due(T0, limit=2)
    rest = await store.claim_due(T0, limit=2)

    assert [i.event.dedup_key for i in first] == ["a", "b"]
    assert [i.event.dedup_key for i in rest] == ["c"]


async def test_resolve_waits_while_its_trigger_is_being_sent(store: Store) -> None:
    await _queue(store, ("pagerduty", alert_event("bridge")))
    [trigger] = await store.claim_due(T0)
    await _queue(store, ("pagerduty", alert_event("bridge", EventAction.RESOLVE)))

    assert await store.claim_due(T0) == []

    await store.mark_sent(trigger.id, T0)
    [resolve] = await store.claim_due(T0)
    assert resolve.event.action is EventAction.RESOLVE


async def test_resolve_waits_behind_a_trigger_that_is_waiting_to_retry(store: Store) -> None:
    await _queue(
        store,
        ("pagerduty", alert_event("bridge")),
        ("pagerduty", alert_event("bridge", EventAction.RESOLVE)),
    )
    [trigger] = await store.claim_due(T0)
    await store.mark_retry(trigger.id, T0 + timedelta(minutes=1), "HTTP 429")

    assert await store.claim_due(T0) == []
    assert [i.event.action for i in await store.claim_due(T0 + timedelta(minutes=1))] == [
        EventAction.TRIGGER
    ]


async def test_same_dedup_key_on_another_channel_does_not_wait(store: Store) -> None:
    await _queue(
        store,
        ("pagerduty", alert_event("bridge")),
        ("pagerduty", alert_event("bridge", EventAction.RESOLVE)),
        ("webhook:acme", alert_event("bridge", EventAction.RESOLVE)),
    )

    claimed = await store.claim_due(T0)

    assert [(i.channel, i.event.action) for i in claimed] == [
        ("pagerduty", EventAction.TRIGGER),
        ("webhook:acme", EventAction.RESOLVE),
    ]


async def test_a_claimed_row_is_not_claimed_again(store: Store) -> None:
    await _queue(store, ("pagerduty", alert_event("bridge")))
    await store.claim_due(T0)

    assert await store.claim_due(T0 + timedelta(hours=1)) == []


async def test_concurrent_claims_never_return_the_same_row(store: Store) -> None:
    await _queue(store, *[("pagerduty", alert_event(f"key-{n}")) for n in range(20)])

    async with asyncio.timeout(10):
        first, second = await asyncio.gather(
            store.claim_due(T0, limit=15), store.claim_due(T0, limit=15)
        )

    ids = [i.id for i in first + second]
    assert len(ids) == len(set(ids)) == 20


async def test_mark_retry_counts_the_attempt_and_delays_the_row(store: Store) -> None:
    await _queue(store, ("pagerduty", alert_event("bridge")))
    [item] = await store.claim_due(T0)
    retry_at = T0 + timedelta(seconds=30)

    await store.mark_retry(item.id, retry_at, "HTTP 503 from PagerDuty")

    assert await store.claim_due(retry_at - timedelta(seconds=1)) == []
    [again] = await store.claim_due(retry_at)
    assert (again.id, again.attempts, again.next_attempt_at, again.last_error) == (
        item.id,
        1,
        retry_at,
        "HTTP 503 from PagerDuty",
    )


async def test_rejected_row_is_finished(store: Store) -> None:
    await _queue(store, ("pagerduty", alert_event("bridge")))
    [item] = await store.claim_due(T0)

    await store.mark_rejected(item.id, "HTTP 400: invalid routing key")

    assert await store.claim_due(T0 + timedelta(days=1)) == []
    assert await store.outbox_pending() == {}


async def test_marking_an_unknown_row_raises_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="mark_sent.*4242"):
        await store.mark_sent(4242, T0)


async def test_requeue_stale_returns_sending_rows_to_pending(store: Store) -> None:
    await _queue(store, *[("pagerduty", alert_event(key)) for key in "abc"])
    claimed = await store.claim_due(T0, limit=2)

    assert await store.requeue_stale() == 2

    again = await store.claim_due(T0)
    assert [i.id for i in again] == [i.id for i in claimed] + [again[-1].id]
    assert all(i.attempts == 0 for i in again)


async def test_pending_counts_include_sending_rows_per_channel(store: Store) -> None:
    await _queue(
        store,
        ("pagerduty", alert_event("a")),
        ("pagerduty", alert_event("b")),
        ("webhook:acme", alert_event("c")),
        ("pagerduty", alert_event("d")),
    )
    [first, *_] = await store.claim_due(T0, limit=2)
    await store.mark_sent(first.id, T0)

    assert await store.outbox_pending() == {"pagerduty": 2, "webhook:acme": 1}


async def test_oldest_pending_age_is_that_of_the_oldest_unsent_row(store: Store) -> None:
    assert await store.outbox_oldest_pending(T0) is None
    await _queue(store, ("pagerduty", alert_event("a")), now=T0)
    await _queue(store, ("pagerduty", alert_event("b")), now=T0 + timedelta(minutes=1))
    now = T0 + timedelta(minutes=5)

    assert await store.outbox_oldest_pending(now) == 300.0

    [sent] = await store.claim_due(T0)
    await store.mark_sent(sent.id, now)
    assert await store.outbox_oldest_pending(now) == 240.0


# -- meta ----------------------------------------------------------------------------------


async def test_meta_round_trips_json_values(store: Store) -> None:
    value = {"last_sweep": T0.isoformat(), "counts": [1, 2], "ok": True}
    await store.set_meta("sweep", value)

    assert await store.get_meta("sweep") == value
    assert await store.get_meta("missing") is None


# -- history (issue 15): buckets of run outcomes, incident occurrences --------------------


def _run(status: Status, at: datetime, took: float = 0.5, iid: str = "bridge-dc1") -> ProbeResult:
    return ProbeResult(integration_id=iid, status=status, started_at=at, duration_seconds=took)


async def _record(store: Store, *results: ProbeResult) -> None:
    for result in results:
        state = IntegrationState(integration_id=result.integration_id, status=result.status)
        await store.record_run(state, result, [])


async def test_a_run_is_counted_in_its_hour_and_its_day(store: Store) -> None:
    at = T0 + timedelta(minutes=17)
    await _record(store, _run(Status.OK, at, 0.25), _run(Status.FAILING, at, 0.75))
    [hour] = await store.buckets("bridge-dc1", HOUR_SPAN, T0)
    [day] = await store.buckets("bridge-dc1", DAY_SPAN, T0 - timedelta(hours=12))
    assert hour == Bucket(
        start=T0, span_seconds=HOUR_SPAN, ok=1, bad=1, latency_total=1.0, latency_max=0.75
    )
    assert (day.start, day.ok, day.bad, day.latency_max) == (T0 - timedelta(hours=12), 1, 1, 0.75)


async def test_runs_recorded_together_add_up_in_one_bucket(store: Store) -> None:
    runs = [_run(Status.OK, T0), _run(Status.DEGRADED, T0), _run(Status.UNREACHABLE, T0)]
    states = [IntegrationState(integration_id="bridge-dc1") for _ in runs]
    await asyncio.gather(*(store.record_run(s, r, []) for s, r in zip(states, runs, strict=True)))
    [hour] = await store.buckets("bridge-dc1", HOUR_SPAN, T0)
    assert (hour.ok, hour.degraded, hour.bad, hour.runs) == (1, 1, 1, 3)


async def test_a_run_that_proves_nothing_is_not_counted(store: Store) -> None:
    await _record(store, _run(Status.UNKNOWN, T0))
    assert await store.buckets("bridge-dc1", HOUR_SPAN, T0) == []


async def test_buckets_are_listed_oldest_first_from_since(store: Store) -> None:
    await _record(store, *(_run(Status.OK, T0 + timedelta(hours=n)) for n in (2, 0, 1)))
    found = await store.buckets("bridge-dc1", HOUR_SPAN, T0 + timedelta(hours=1))
    assert [b.start for b in found] == [T0 + timedelta(hours=1), T0 + timedelta(hours=2)]


async def test_fleet_buckets_are_each_integrations_own(store: Store) -> None:
    await _record(store, _run(Status.OK, T0, iid="a"), _run(Status.FAILING, T0, iid="b"))
    fleet = await store.fleet_buckets(["a", "b", "none"], DAY_SPAN, T0 - timedelta(days=1))
    assert {iid: [(b.ok, b.bad) for b in kept] for iid, kept in fleet.items()} == {
        "a": [(1, 0)],
        "b": [(0, 1)],
    }


async def test_fleet_buckets_read_only_the_ids_asked_for(store: Store) -> None:
    await _record(store, *(_run(Status.OK, T0, iid=iid) for iid in ("a", "b", "c")))
    fleet = await store.fleet_buckets(["c", "a"], DAY_SPAN, T0 - timedelta(days=1))
    assert sorted(fleet) == ["a", "c"]
    assert await store.fleet_buckets([], DAY_SPAN, T0 - timedelta(days=1)) == {}


async def test_fleet_totals_add_up_each_integrations_buckets_since(store: Store) -> None:
    await _record(
        store,
        _run(Status.OK, T0 - timedelta(hours=2), 0.5, iid="a"),  # before `since`: left out
        _run(Status.OK, T0, 0.25, iid="a"),
        _run(Status.FAILING, T0 + timedelta(hours=3), 0.75, iid="a"),
        _run(Status.DEGRADED, T0, 0.5, iid="b"),
    )
    totals = await store.fleet_totals(["a", "b"], HOUR_SPAN, T0)
    assert totals == {
        "a": Bucket(
            start=T0, span_seconds=HOUR_SPAN, ok=1, bad=1, latency_total=1.0, latency_max=0.75
        ),
        "b": Bucket(
            start=T0, span_seconds=HOUR_SPAN, degraded=1, latency_total=0.5, latency_max=0.5
        ),
    }


async def test_fleet_totals_read_only_the_ids_asked_for(store: Store) -> None:
    await _record(store, *(_run(Status.OK, T0, iid=iid) for iid in ("a", "b", "c")))
    assert sorted(await store.fleet_totals(["b"], HOUR_SPAN, T0)) == ["b"]


async def test_retention_drops_buckets_older_than_it_on_a_new_day(make_store: MakeStore) -> None:
    store = await make_store(Retention(recent_history=timedelta(days=1), history=timedelta(days=3)))
    day0 = datetime(2026, 3, 1, tzinfo=UTC)
    await _record(store, *(_run(Status.OK, day0 + timedelta(days=n, hours=1)) for n in range(5)))
    days = await store.buckets("bridge-dc1", DAY_SPAN, day0)
    hours = await store.buckets("bridge-dc1", HOUR_SPAN, day0)
    assert [b.start for b in days] == [day0 + timedelta(days=n) for n in (2, 3, 4)]
    # Hours are dropped by the day too: those that started a day or more before day 4 began.
    assert [b.start for b in hours] == [day0 + timedelta(days=n, hours=1) for n in (3, 4)]


async def test_retention_keeps_other_integrations_buckets(make_store: MakeStore) -> None:
    store = await make_store(Retention(history=timedelta(days=1)))
    await _record(store, _run(Status.OK, T0, iid="quiet"))
    await _record(store, _run(Status.OK, T0 + timedelta(days=5), iid="busy"))
    assert len(await store.buckets("quiet", DAY_SPAN, T0 - timedelta(days=1))) == 1


def _occurrence(key: str, opened: datetime, **details: object) -> Incident:
    return Incident(
        dedup_key=key, rule="integration_failing", summary=key, opened_at=opened, details=details
    )


async def _flap(store: Store, key: str, times: int, **details: object) -> None:
    for n in range(times):
        opened = T0 + timedelta(hours=n)
        await store.apply_alerts(
            opened=[_occurrence(key, opened, **details)], resolved=[], events=[], now=opened
        )
        closed = opened + timedelta(minutes=10 + n)
        await store.apply_alerts(opened=[], resolved=[(key, closed)], events=[], now=closed)


async def test_a_flapping_integrations_three_incidents_are_three_records(store: Store) -> None:
    await _flap(store, "twilio-acme", 3, integration="twilio-acme", tenant="acme")
    records = await store.incident_history(IncidentQuery())
    assert [r.incident.opened_at for r in records] == [T0 + timedelta(hours=n) for n in (2, 1, 0)]
    assert [r.incident.resolved_at - r.incident.opened_at for r in records] == [
        timedelta(minutes=m) for m in (12, 11, 10)
    ]
    assert len({r.id for r in records}) == 3


async def test_incident_history_pages_by_cursor_without_gaps_or_repeats(store: Store) -> None:
    await _flap(store, "k", 5, integration="i")
    first = await store.incident_history(IncidentQuery(limit=2))
    second = await store.incident_history(IncidentQuery(limit=2, before=first[-1].id))
    third = await store.incident_history(IncidentQuery(limit=2, before=second[-1].id))
    opened = [r.incident.opened_at for r in (*first, *second, *third)]
    assert opened == [T0 + timedelta(hours=n) for n in (4, 3, 2, 1, 0)]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (IncidentQuery(tenant="acme"), {"acme-own", "shared"}),
        (IncidentQuery(tenant="globex"), {"globex-own", "shared"}),
        (IncidentQuery(integration="twilio-acme"), {"acme-own"}),
        (IncidentQuery(rule="provider_outage"), {"shared"}),
        (IncidentQuery(provider="twilio"), {"acme-own", "shared"}),
        (IncidentQuery(provider="sendgrid"), {"globex-own"}),
        (IncidentQuery(open=True), {"globex-own"}),
        (IncidentQuery(open=False, tenant="globex"), {"shared"}),
    ],
)
async def test_incident_history_filters(
    store: Store, query: IncidentQuery, expected: set[str]
) -> None:
    await _flap(store, "acme-own", 1, integration="twilio-acme", tenant="acme", provider="twilio")
    await store.apply_alerts(
        opened=[
            _occurrence(
                "globex-own", T0, integration="sg-globex", tenant="globex", provider="sendgrid"
            )
        ],
        resolved=[],
        events=[],
        now=T0,
    )
    shared = Incident(
        dedup_key="shared",
        rule="provider_outage",
        summary="Twilio is failing for several workspaces",
        opened_at=T0,
        resolved_at=T0 + timedelta(minutes=5),
        details={"provider": "twilio", "tenants": ["acme", "globex"]},
    )
    await store.apply_alerts(opened=[shared], resolved=[], events=[], now=T0)
    assert {r.incident.dedup_key for r in await store.incident_history(query)} == expected


async def test_an_occurrence_keeps_each_event_queued_for_it_and_when_it_was_sent(
    store: Store,
) -> None:
    opened, closed = T0, T0 + timedelta(minutes=9)
    trigger, resolve = alert_event("k"), alert_event("k", EventAction.RESOLVE)
    await store.apply_alerts(
        opened=[_occurrence("k", opened)], resolved=[], events=[("pagerduty", trigger)], now=opened
    )
    [claimed] = await store.claim_due(opened)
    await store.mark_sent(claimed.id, opened + timedelta(seconds=2))
    await store.apply_alerts(
        opened=[], resolved=[("k", closed)], events=[("pagerduty", resolve)], now=closed
    )
    [record] = await store.incident_history(IncidentQuery())
    assert record.events == (
        IncidentEventRecord(
            action=EventAction.TRIGGER,
            channel="pagerduty",
            queued_at=opened,
            sent_at=opened + timedelta(seconds=2),
        ),
        IncidentEventRecord(action=EventAction.RESOLVE, channel="pagerduty", queued_at=closed),
    )


async def test_each_occurrence_keeps_only_its_own_events(store: Store) -> None:
    for n in range(2):
        opened = T0 + timedelta(hours=n)
        closed = opened + timedelta(minutes=5)
        await store.apply_alerts(
            opened=[_occurrence("k", opened)],
            resolved=[],
            events=[("pagerduty", alert_event("k"))],
            now=opened,
        )
        await store.apply_alerts(
            opened=[],
            resolved=[("k", closed)],
            events=[("pagerduty", alert_event("k", EventAction.RESOLVE))],
            now=closed,
        )
    records = await store.incident_history(IncidentQuery())
    assert [[(e.action, e.queued_at) for e in r.events] for r in records] == [
        [
            (EventAction.TRIGGER, T0 + timedelta(hours=h)),
            (EventAction.RESOLVE, T0 + timedelta(hours=h, minutes=5)),
        ]
        for h in (1, 0)
    ]


async def test_events_go_when_their_occurrence_is_pruned(make_store: MakeStore) -> None:
    store = await make_store(Retention(resolved_incidents=1))
    for n in range(2):
        opened = T0 + timedelta(hours=n)
        await store.apply_alerts(
            opened=[_occurrence(f"k{n}", opened)],
            resolved=[],
            events=[("pagerduty", alert_event(f"k{n}"))],
            now=opened,
        )
        await store.apply_alerts(opened=[], resolved=[(f"k{n}", opened)], events=[], now=opened)
    [kept] = await store.incident_history(IncidentQuery())
    assert kept.incident.dedup_key == "k1" and len(kept.events) == 1


# -- the delivery ledger -------------------------------------------------------------------


def _outcome(
    message_id: str,
    status: str = "undelivered",
    stage: DeliveryStage = DeliveryStage.FINAL,
    *,
    at: datetime = T0,
    code: str | None = "30003",
    integration_id: str = "tw-1",
) -> DeliveryOutcome:
    return DeliveryOutcome(
        integration_id=integration_id,
        message_id=message_id,
        status=status,
        stage=stage,
        category=Category.RECIPIENT,
        provider_code=code,
        at=at,
    )


async def test_record_deliveries_counts_a_replayed_status_once(make_store: MakeStore) -> None:
    store = await make_store()
    first = await store.record_deliveries([_outcome("SM1"), _outcome("SM1")])
    again = await store.record_deliveries([_outcome("SM1", at=T0 + timedelta(minutes=5))])
    assert [o.message_id for o in first] == ["SM1"]
    assert again == []


async def test_record_deliveries_counts_a_late_final_status_after_pending_ones(
    make_store: MakeStore,
) -> None:
    store = await make_store()
    sent = await store.record_deliveries(
        [_outcome("SM1", "sent", DeliveryStage.PENDING, code=None)]
    )
    receipt = await store.record_deliveries([_outcome("SM1", at=T0 + timedelta(hours=2))])
    assert sent == []
    assert [(o.status, o.at) for o in receipt] == [("undelivered", T0 + timedelta(hours=2))]


async def test_record_deliveries_counts_one_final_status_per_message(
    make_store: MakeStore,
) -> None:
    store = await make_store()
    counted = await store.record_deliveries(
        [_outcome("SM1", "delivered", code=None), _outcome("SM1", "undelivered")]
    )
    assert [o.status for o in counted] == ["delivered"]


async def test_a_second_final_status_does_not_stop_the_rest_of_its_batch(
    make_store: MakeStore,
) -> None:
    store = await make_store()
    counted = await store.record_deliveries(
        [
            _outcome("SM1", "delivered", code=None),
            _outcome("SM1", "undelivered"),
            _outcome("SM2", "undelivered"),
        ]
    )
    assert [(o.message_id, o.status) for o in counted] == [
        ("SM1", "delivered"),
        ("SM2", "undelivered"),
    ]


async def test_concurrent_writes_of_a_messages_two_final_statuses_count_it_once(
    make_store: MakeStore,
) -> None:
    # Two writers (two replicas' ledgers, or one's batches on two pooled connections) each
    # with a final status of the same messages: the store decides which counts, not a read
    # before the write that the other's uncommitted row is invisible to.
    store = await make_store()
    messages = [f"SM{n}" for n in range(200)]
    delivered, undelivered = await asyncio.gather(
        store.record_deliveries([_outcome(m, "delivered", code=None) for m in messages]),
        store.record_deliveries([_outcome(m, "undelivered") for m in messages]),
    )
    counted = sorted(o.message_id for o in delivered + undelivered)
    assert counted == sorted(messages)
    assert sorted(o.message_id for o in await store.counted_deliveries(T0)) == sorted(messages)


async def test_record_deliveries_counts_each_reaction_once(make_store: MakeStore) -> None:
    store = await make_store()
    counted = await store.record_deliveries(
        [
            _outcome("m1", "delivered", code=None),
            _outcome("m1", "spamreport", DeliveryStage.REACTION, code=None),
            _outcome("m1", "spamreport", DeliveryStage.REACTION, code=None),
        ]
    )
    assert [o.status for o in counted] == ["delivered", "spamreport"]


async def test_counted_deliveries_survive_a_reopen_oldest_first(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    store = SQLiteStore(path)
    await store.open()
    await store.record_deliveries(
        [_outcome("SM2", at=T0 + timedelta(minutes=1)), _outcome("SM1", at=T0)]
    )
    await store.close()
    reopened = SQLiteStore(path)
    await reopened.open()
    try:
        kept = await reopened.counted_deliveries(T0)
        replay = await reopened.record_deliveries([_outcome("SM1")])
    finally:
        await reopened.close()
    assert [o.message_id for o in kept] == ["SM1", "SM2"]
    assert kept[0] == _outcome("SM1", at=T0)
    assert replay == []


async def test_counted_deliveries_leave_out_pending_and_older_ones(make_store: MakeStore) -> None:
    store = await make_store()
    await store.record_deliveries(
        [
            _outcome("old", at=T0 - timedelta(hours=1)),
            _outcome("sent", "sent", DeliveryStage.PENDING, code=None),
            _outcome("new"),
        ]
    )
    assert [o.message_id for o in await store.counted_deliveries(T0)] == ["new"]


async def test_record_deliveries_prunes_outcomes_older_than_the_retention(
    make_store: MakeStore,
) -> None:
    store = await make_store(Retention(deliveries_age=timedelta(days=7)))
    await store.record_deliveries([_outcome("SM1", at=T0)])
    await store.record_deliveries([_outcome("SM2", at=T0 + timedelta(days=7, seconds=1))])
    assert [o.message_id for o in await store.counted_deliveries(T0 - timedelta(days=1))] == ["SM2"]


async def test_delivery_examples_are_one_integrations_newest_with_the_code(
    make_store: MakeStore,
) -> None:
    store = await make_store()
    await store.record_deliveries(
        [
            *(_outcome(f"SM{n}", at=T0 + timedelta(minutes=n)) for n in range(5)),
            _outcome("SMother", code="30007", at=T0 + timedelta(minutes=9)),
            _outcome("SMelse", integration_id="tw-2", at=T0 + timedelta(minutes=9)),
        ]
    )
    examples = await store.delivery_examples("tw-1", "30003", T0 + timedelta(minutes=1), 3)
    assert [o.message_id for o in examples] == ["SM4", "SM3", "SM2"]


# -- the registry ----------------------------------------------------------------------------


def _registration(record_id: str, revision: int = 1, tenant: str = "acme") -> RegistryRecord:
    return RegistryRecord(
        id=record_id, tenant=tenant, revision=revision, spec=f'{{"r":{revision}}}', updated_at=T0
    )


async def test_registry_records_come_back_in_id_order_as_written(store: Store) -> None:
    await store.registry_write(put=[_registration("b"), _registration("a")], delete=[])

    assert await store.registry_records() == [_registration("a"), _registration("b")]


async def test_registry_write_replaces_by_id_and_deletes_in_one_call(store: Store) -> None:
    await store.registry_write(put=[_registration("a"), _registration("b")], delete=[])
    await store.registry_write(put=[_registration("a", revision=2)], delete=["b", "never-there"])

    assert await store.registry_records() == [_registration("a", revision=2)]


async def test_removing_a_registry_record_keeps_the_integrations_history(store: Store) -> None:
    await store.registry_write(put=[_registration("bridge-dc1")], delete=[])
    await store.record_run(
        IntegrationState(integration_id="bridge-dc1"), _result(), [_transition(0)]
    )
    await store.registry_write(put=[], delete=["bridge-dc1"])

    assert len(await store.transitions("bridge-dc1")) == 1

"""The row codecs every backend shares: model objects to the tuples its tables hold, and back.

One encoding for every backend, so the contract suite checks it once per backend and a
second SQL backend adds only its dialect (schema and statements), never an encoder:

- Datetimes are fixed-width UTC ISO 8601 text (`2026-03-01T12:00:00.000000+00:00`): text
  order is time order, so `next_attempt_at <= ?` and `ORDER BY` work in any SQL database,
  and an aware datetime in any zone reads back equal. A naive one is refused (ValueError).
- A probe result, an incident's details, an outbox event and a meta value are JSON text.
- Each `*_COLUMNS` names a table's columns in the order of the tuple its codec makes or
  reads; dialects build their statements from them, so a statement cannot disagree with its
  codec about the order.

The encoders run on the event loop when a write is made (the writer only executes), and
the decoders on whatever reads the rows; both are plain functions with no per-row state.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from healthd.model import (
    AlertEvent,
    Incident,
    IntegrationState,
    OutboxItem,
    OutboxStatus,
    ProbeResult,
    Status,
    Transition,
    TransitionKind,
)
from healthd.store._history import BucketRow, bucket_rows

# An outbox row is in flight until it is finished; only finished rows are ever pruned.
IN_FLIGHT = (OutboxStatus.PENDING, OutboxStatus.SENDING)
FINISHED = (OutboxStatus.SENT, OutboxStatus.REJECTED)

STATE_COLUMNS = (
    "integration_id",
    "status",
    "since",
    "consecutive_failures",
    "consecutive_successes",
    "last_checked",
    "last_success",
    "unreachable_since",
    "last_result_status",
    "reachable_streak",
    "disagreeing_runs",
)
RESULT_COLUMNS = ("integration_id", "result")
TRANSITION_COLUMNS = ("integration_id", "kind", "at", "from_status", "to_status")
INCIDENT_COLUMNS = ("dedup_key", "rule", "summary", "opened_at", "resolved_at", "details")
# A new row (`outbox_row`); the table adds `id`, `last_error` and `sent_at`.
NEW_OUTBOX_COLUMNS = (
    "channel",
    "dedup_key",
    "event",
    "status",
    "attempts",
    "next_attempt_at",
    "created_at",
)
# What `outbox_item` reads.
OUTBOX_ITEM_COLUMNS = (
    "id",
    "channel",
    "event",
    "status",
    "attempts",
    "next_attempt_at",
    "created_at",
    "last_error",
)

StateRow = tuple[str, str, str | None, int, int, str | None, str | None, str | None, str, int, int]
ResultRow = tuple[str, str]
TransitionRow = tuple[str, str, str, str, str]
IncidentRow = tuple[str, str, str, str, str | None, str]
OutboxRow = tuple[str, str, str, str, int, str, str]


@dataclass(frozen=True, slots=True)
class RunRows:
    """One `record_run`, encoded: the rows a backend writes for it, in one transaction."""

    state: StateRow
    result: ResultRow
    transitions: list[TransitionRow]
    buckets: list[BucketRow]


def run_rows(
    state: IntegrationState, result: ProbeResult, transitions: Sequence[Transition]
) -> RunRows:
    return RunRows(
        state=state_row(state),
        result=result_row(result),
        transitions=[transition_row(t) for t in transitions],
        buckets=bucket_rows(result),
    )


# -- datetimes -------------------------------------------------------------------------------


def iso(when: datetime) -> str:
    if when.tzinfo is None:
        raise ValueError(f"the store keeps aware datetimes only, got naive {when.isoformat()}")
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def iso_optional(when: datetime | None) -> str | None:
    return None if when is None else iso(when)


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


def parse_optional(text: str | None) -> datetime | None:
    return None if text is None else parse(text)


# -- state, results, transitions -------------------------------------------------------------


def state_row(state: IntegrationState) -> StateRow:
    return (
        state.integration_id,
        state.status.value,
        iso_optional(state.since),
        state.consecutive_failures,
        state.consecutive_successes,
        iso_optional(state.last_checked),
        iso_optional(state.last_success),
        iso_optional(state.unreachable_since),
        state.last_result_status.value,
        state.reachable_streak,
        state.disagreeing_runs,
    )


def state_from_row(row: Sequence[Any]) -> IntegrationState:
    return IntegrationState(
        integration_id=row[0],
        status=Status(row[1]),
        since=parse_optional(row[2]),
        consecutive_failures=row[3],
        consecutive_successes=row[4],
        last_checked=parse_optional(row[5]),
        last_success=parse_optional(row[6]),
        unreachable_since=parse_optional(row[7]),
        last_result_status=Status(row[8]),
        reachable_streak=row[9],
        disagreeing_runs=row[10],
    )


def result_row(result: ProbeResult) -> ResultRow:
    return (result.integration_id, json.dumps(result.to_dict()))


def result_from_row(row: Sequence[Any]) -> ProbeResult:
    return ProbeResult.from_dict(json.loads(row[1]))


def transition_row(transition: Transition) -> TransitionRow:
    return (
        transition.integration_id,
        transition.kind.value,
        iso(transition.at),
        transition.from_status.value,
        transition.to_status.value,
    )


def transition_from_row(row: Sequence[Any]) -> Transition:
    return Transition(
        integration_id=row[0],
        kind=TransitionKind(row[1]),
        at=parse(row[2]),
        from_status=Status(row[3]),
        to_status=Status(row[4]),
    )


# -- incidents and the outbox ----------------------------------------------------------------


def incident_row(incident: Incident) -> IncidentRow:
    return (
        incident.dedup_key,
        incident.rule,
        incident.summary,
        iso(incident.opened_at),
        iso_optional(incident.resolved_at),
        json.dumps(dict(incident.details)),
    )


def incident_from_row(row: Sequence[Any]) -> Incident:
    return Incident(
        dedup_key=row[0],
        rule=row[1],
        summary=row[2],
        opened_at=parse(row[3]),
        resolved_at=parse_optional(row[4]),
        details=json.loads(row[5]),
    )


def outbox_row(channel: str, event: AlertEvent, now: datetime) -> OutboxRow:
    """A new row: pending, never attempted, due at once."""
    stamp = iso(now)
    return (
        channel,
        event.dedup_key,
        json.dumps(event.to_dict()),
        OutboxStatus.PENDING.value,
        0,
        stamp,
        stamp,
    )


def outbox_item(row: Sequence[Any], status: OutboxStatus) -> OutboxItem:
    """The item an `OUTBOX_ITEM_COLUMNS` row holds, as it is once `status` is set."""
    return OutboxItem(
        id=row[0],
        channel=row[1],
        event=AlertEvent.from_dict(json.loads(row[2])),
        status=status,
        attempts=row[4],
        next_attempt_at=parse(row[5]),
        created_at=parse(row[6]),
        last_error=row[7],
    )


# -- meta --------------------------------------------------------------------------------------


def meta_text(value: Any) -> str:
    """A meta value as JSON text: what every backend keeps, so each hands back fresh copies
    and refuses what JSON cannot hold (TypeError) alike."""
    return json.dumps(value)


def meta_value(text: str | None) -> Any:
    return None if text is None else json.loads(text)

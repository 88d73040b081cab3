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
One cache: the JSON text of findings seen lately (`result_row`), since a healthy
integration reports the same findings run after run, and so do most of a fleet's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _json_string
from typing import Any, Protocol

from healthd.model import (
    AlertEvent,
    Category,
    DeliveryOutcome,
    DeliveryStage,
    Finding,
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


class Row(Protocol):
    """What the decoders read: a row by column position (a tuple, sqlite3's row, an
    asyncpg Record)."""

    def __getitem__(self, index: int, /) -> Any: ...


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


def upsert(table: str, columns: Sequence[str], values: str) -> str:
    """An insert of a row keyed by its first column that updates the row in place when it
    is there (both backends speak `ON CONFLICT ... DO UPDATE`; `values` in the dialect's
    placeholders). SQLite's `INSERT OR REPLACE` deleted and re-inserted instead: 22-37 µs
    a row against 5 on tables of 100,000 (bench/RESULTS.md, session 6)."""
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values})"
        f" ON CONFLICT ({columns[0]}) DO UPDATE SET {updates}"
    )


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
    if when.tzinfo is UTC:  # the clock's own: nothing to convert (a run writes four)
        return when.isoformat(timespec="microseconds")
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


def state_from_row(row: Row) -> IntegrationState:
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


# Finding -> its JSON text; cleared when full, so it holds the findings of lately.
_FINDING_TEXT: dict[Finding, str] = {}
FINDING_TEXTS_KEPT = 4096


def _finding_text(finding: Finding) -> str:
    text = _FINDING_TEXT.get(finding)
    if text is None:
        if len(_FINDING_TEXT) >= FINDING_TEXTS_KEPT:
            _FINDING_TEXT.clear()
        text = _FINDING_TEXT[finding] = json.dumps(finding.to_dict())
    return text


def _json_number(value: float) -> str:
    return repr(float(value)) if math.isfinite(value) else json.dumps(value)


def result_row(result: ProbeResult) -> ResultRow:
    """`json.dumps(result.to_dict())`, written out: each finding's text is kept once made
    (`_finding_text`), and the rest is four values. Encoding the whole result was about
    35 µs of every run's CPU (bench/RESULTS.md "CPU per probe (session 5)")."""
    findings = ", ".join(_finding_text(f) for f in result.findings)
    text = (
        f'{{"integration_id": {_json_string(result.integration_id)},'
        f' "status": {_json_string(result.status.value)},'
        f' "started_at": {_json_string(result.started_at.isoformat())},'
        f' "duration_seconds": {_json_number(result.duration_seconds)},'
        f' "findings": [{findings}]}}'
    )
    return (result.integration_id, text)


# A stored result's findings as `result_row` (and `json.dumps`) spell them, last -> the
# decoded tuple, which results share (it is immutable): a fleet's results repeat a few
# findings texts, and a start-up decodes every integration's at once. At 100,000 decoding
# them was a third of the start-up and a Finding object each. Cleared when full.
_FINDINGS_OF_TEXT: dict[str, tuple[Finding, ...]] = {}
_FINDINGS_KEY = ', "findings": ['


def result_from_row(row: Row) -> ProbeResult:
    text: str = row[1]
    # The key's quotes cannot occur unescaped inside a string before it (an id, a status).
    at = text.find(_FINDINGS_KEY)
    if at < 0 or not text.endswith("]}"):
        return ProbeResult.from_dict(json.loads(text))  # spelled some other way
    listed = text[at + len(_FINDINGS_KEY) - 1 : -1]
    findings = _FINDINGS_OF_TEXT.get(listed)
    if findings is None:
        findings = tuple(Finding.from_dict(f) for f in json.loads(listed))
        if len(_FINDINGS_OF_TEXT) >= FINDING_TEXTS_KEPT:
            _FINDINGS_OF_TEXT.clear()
        _FINDINGS_OF_TEXT[listed] = findings
    return ProbeResult.from_dict(json.loads(text[:at] + "}"), findings)


def transition_row(transition: Transition) -> TransitionRow:
    return (
        transition.integration_id,
        transition.kind.value,
        iso(transition.at),
        transition.from_status.value,
        transition.to_status.value,
    )


def transition_from_row(row: Row) -> Transition:
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


def incident_from_row(row: Row) -> Incident:
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


def outbox_item(row: Row, status: OutboxStatus) -> OutboxItem:
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


# -- the delivery ledger -----------------------------------------------------------------------

DELIVERY_COLUMNS = (
    "integration_id",
    "message_id",
    "status",
    "stage",
    "category",
    "provider_code",
    "source",
    "at",
    "counted",
)


def delivery_row(outcome: DeliveryOutcome, counted: bool) -> tuple[Any, ...]:
    return (
        outcome.integration_id,
        outcome.message_id,
        outcome.status,
        outcome.stage.value,
        None if outcome.category is None else outcome.category.value,
        outcome.provider_code,
        outcome.source,
        iso(outcome.at),
        int(counted),
    )


def delivery_from_row(row: Sequence[Any]) -> DeliveryOutcome:
    return DeliveryOutcome(
        integration_id=row[0],
        message_id=row[1],
        status=row[2],
        stage=DeliveryStage(row[3]),
        category=None if row[4] is None else Category(row[4]),
        provider_code=row[5],
        source=row[6],
        at=parse(row[7]),
    )

"""The reference Store: plain dicts in one process, lost on exit.

It defines the semantics the SQLite store must match (the contract suite runs both), and
serves unit tests of the runner, rules and outbox that do not care about durability. The
methods are coroutines for the protocol's sake but never await: each one runs to
completion without yielding, which is what makes its claims atomic.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from healthd.errors import StoreError
from healthd.model import (
    AlertEvent,
    Bucket,
    DeliveryOutcome,
    DeliveryStage,
    Incident,
    IncidentEventRecord,
    IncidentQuery,
    IncidentRecord,
    IntegrationState,
    OutboxItem,
    OutboxStatus,
    ProbeResult,
    RegistryRecord,
    Transition,
)
from healthd.store._history import (
    BucketRow,
    Pruning,
    bucket,
    bucket_rows,
    epoch,
    merged,
    total,
)
from healthd.store._retention import Retention
from healthd.store._rows import FINISHED, IN_FLIGHT, meta_text, meta_value


@dataclass(kw_only=True, slots=True)
class _OutboxRow:
    id: int
    channel: str
    event: AlertEvent
    status: OutboxStatus
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    last_error: str | None = None
    sent_at: datetime | None = None

    def item(self) -> OutboxItem:
        return OutboxItem(
            id=self.id,
            channel=self.channel,
            event=self.event,
            status=self.status,
            attempts=self.attempts,
            next_attempt_at=self.next_attempt_at,
            created_at=self.created_at,
            last_error=self.last_error,
        )


class MemoryStore:
    """See `healthd.interfaces.Store` for the contract."""

    def __init__(self, *, retention: Retention | None = None) -> None:
        self._retention = retention or Retention()
        self._states: dict[str, IntegrationState] = {}
        self._results: dict[str, ProbeResult] = {}
        self._transitions: dict[str, list[Transition]] = {}
        # Every occurrence by its id (insertion order), and the open one of each key.
        self._incidents: dict[int, Incident] = {}
        self._open_incidents: dict[str, int] = {}
        self._incident_ids = itertools.count(1)
        self._outbox: dict[int, _OutboxRow] = {}
        self._ids = itertools.count(1)
        self._meta: dict[str, str] = {}
        # (span, integration id) -> bucket start -> its row (`healthd.store._history`).
        self._buckets: dict[tuple[int, str], dict[int, BucketRow]] = {}
        self._pruning = Pruning(self._retention)
        # Each outbox row's event, as part of the occurrence it was queued for: row id ->
        # (occurrence number, the event as kept).
        self._events: dict[int, tuple[int, IncidentEventRecord]] = {}
        # The delivery ledger: each (integration, message, status) once, with whether it
        # was counted; and the messages whose final status has been counted.
        self._deliveries: dict[tuple[str, str, str], tuple[DeliveryOutcome, bool]] = {}
        self._finals: set[tuple[str, str]] = set()
        self._registry: dict[str, RegistryRecord] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def load_states(self) -> dict[str, IntegrationState]:
        return dict(self._states)

    async def record_run(
        self, state: IntegrationState, result: ProbeResult, transitions: Sequence[Transition]
    ) -> None:
        self._states[state.integration_id] = state
        self._results[result.integration_id] = result
        for transition in transitions:
            kept = self._transitions.setdefault(transition.integration_id, [])
            kept.append(transition)
            # Not `kept[:-n]`: with n = 0 that slice is empty and would keep everything.
            del kept[: max(len(kept) - self._retention.transitions, 0)]
        rows = bucket_rows(result)
        for row in rows:
            held = self._buckets.setdefault((row[0], row[1]), {})
            had = held.get(row[2])
            held[row[2]] = row if had is None else merged((had, row))[0]
        for span, iid, cutoff in self._pruning.due(rows):
            held = self._buckets.get((span, iid), {})
            for start in [start for start in held if start <= cutoff]:
                del held[start]

    async def latest_results(self) -> dict[str, ProbeResult]:
        return dict(self._results)

    async def transitions(self, integration_id: str, limit: int = 20) -> list[Transition]:
        kept = self._transitions.get(integration_id, [])
        return list(reversed(kept))[:limit]

    async def buckets(
        self, integration_id: str, span_seconds: int, since: datetime
    ) -> list[Bucket]:
        held = self._buckets.get((span_seconds, integration_id), {})
        first = epoch(since)
        return [bucket(held[start]) for start in sorted(held) if start >= first]

    async def fleet_buckets(
        self, ids: Collection[str], span_seconds: int, since: datetime
    ) -> dict[str, list[Bucket]]:
        found = {iid: await self.buckets(iid, span_seconds, since) for iid in set(ids)}
        return {iid: kept for iid, kept in found.items() if kept}

    async def fleet_totals(
        self, ids: Collection[str], span_seconds: int, since: datetime
    ) -> dict[str, Bucket]:
        first = epoch(since)
        found: dict[str, Bucket] = {}
        for iid in set(ids):
            held = self._buckets.get((span_seconds, iid), {})
            rows = [row for start, row in held.items() if start >= first]
            if rows:
                found[iid] = total(span_seconds, since, rows)
        return found

    async def incident_history(self, query: IncidentQuery) -> list[IncidentRecord]:
        found: list[IncidentRecord] = []
        for number in sorted(self._incidents, reverse=True):
            incident = self._incidents[number]
            if len(found) == query.limit:
                break
            if _matches(incident, number, query):
                events = tuple(e for n, e in self._events.values() if n == number)
                found.append(IncidentRecord(id=number, incident=incident, events=events))
        return found

    async def open_incidents(self) -> list[Incident]:
        found = [self._incidents[n] for n in self._open_incidents.values()]
        return sorted(found, key=lambda i: (i.opened_at, i.dedup_key))

    async def apply_alerts(
        self,
        *,
        opened: Sequence[Incident],
        resolved: Sequence[tuple[str, datetime]],
        events: Sequence[tuple[str, AlertEvent]],
        now: datetime,
    ) -> None:
        for incident in opened:
            self._open_incident(incident)
        for dedup_key, at in resolved:
            number = self._open_incidents.pop(dedup_key, None)
            if number is not None:
                self._incidents[number] = replace(self._incidents[number], resolved_at=at)
        if resolved:
            self._prune_resolved_incidents()
        for channel, event in events:
            row_id = next(self._ids)
            self._keep_event(row_id, channel, event, now)
            self._outbox[row_id] = _OutboxRow(
                id=row_id,
                channel=channel,
                event=event,
                status=OutboxStatus.PENDING,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )

    async def claim_due(self, now: datetime, limit: int = 50) -> list[OutboxItem]:
        claimed: list[OutboxItem] = []
        in_flight_keys: set[tuple[str, str]] = set()
        for row in sorted(self._outbox.values(), key=lambda r: r.id):
            if row.status not in IN_FLIGHT:
                continue
            key = (row.channel, row.event.dedup_key)
            blocked = key in in_flight_keys
            in_flight_keys.add(key)
            if blocked or row.status is not OutboxStatus.PENDING or row.next_attempt_at > now:
                continue
            if len(claimed) == limit:
                break
            row.status = OutboxStatus.SENDING
            claimed.append(row.item())
        return claimed

    async def mark_sent(self, item_id: int, now: datetime) -> None:
        row = self._row(item_id, "mark_sent")
        row.status = OutboxStatus.SENT
        row.attempts += 1
        if (kept := self._events.get(item_id)) is not None:
            self._events[item_id] = (kept[0], replace(kept[1], sent_at=now))
        row.sent_at = now
        self._prune_finished(now)

    async def mark_retry(self, item_id: int, next_attempt_at: datetime, error: str) -> None:
        row = self._row(item_id, "mark_retry")
        row.status = OutboxStatus.PENDING
        row.attempts += 1
        row.next_attempt_at = next_attempt_at
        row.last_error = error

    async def mark_rejected(self, item_id: int, error: str) -> None:
        row = self._row(item_id, "mark_rejected")
        row.status = OutboxStatus.REJECTED
        row.attempts += 1
        row.last_error = error

    async def requeue_stale(self) -> int:
        stale = [r for r in self._outbox.values() if r.status is OutboxStatus.SENDING]
        for row in stale:
            row.status = OutboxStatus.PENDING
        return len(stale)

    async def outbox_pending(self) -> dict[str, int]:
        return dict(Counter(r.channel for r in self._outbox.values() if r.status in IN_FLIGHT))

    async def outbox_oldest_pending(self, now: datetime) -> float | None:
        created = [r.created_at for r in self._outbox.values() if r.status in IN_FLIGHT]
        return (now - min(created)).total_seconds() if created else None

    async def get_meta(self, key: str) -> Any:
        return meta_value(self._meta.get(key))

    async def set_meta(self, key: str, value: Any) -> None:
        # Kept as the backends' JSON text, so callers get the same copies and the same errors.
        self._meta[key] = meta_text(value)

    async def record_deliveries(self, outcomes: Sequence[DeliveryOutcome]) -> list[DeliveryOutcome]:
        counted = []
        for outcome in outcomes:
            key = (outcome.integration_id, outcome.message_id, outcome.status)
            if key in self._deliveries:
                continue
            message = key[:2]
            counts = outcome.stage is DeliveryStage.REACTION or (
                outcome.stage is DeliveryStage.FINAL and message not in self._finals
            )
            self._deliveries[key] = (outcome, counts)
            if counts:
                counted.append(outcome)
                if outcome.stage is DeliveryStage.FINAL:
                    self._finals.add(message)
        if outcomes:
            self._prune_deliveries(max(o.at for o in outcomes) - self._retention.deliveries_age)
        return counted

    async def counted_deliveries(self, since: datetime) -> list[DeliveryOutcome]:
        return sorted(
            (o for o, counts in self._deliveries.values() if counts and o.at >= since),
            key=lambda o: o.at,
        )

    async def delivery_examples(
        self, integration_id: str, provider_code: str, since: datetime, limit: int
    ) -> list[DeliveryOutcome]:
        found = [
            o
            for o, counts in self._deliveries.values()
            if counts
            and o.integration_id == integration_id
            and o.provider_code == provider_code
            and o.at >= since
        ]
        return sorted(found, key=lambda o: o.at, reverse=True)[:limit]

    def _prune_deliveries(self, before: datetime) -> None:
        old = [key for key, (o, _) in self._deliveries.items() if o.at < before]
        for key in old:
            outcome, counted = self._deliveries.pop(key)
            if counted and outcome.stage is DeliveryStage.FINAL:
                self._finals.discard(key[:2])

    def _open_incident(self, incident: Incident) -> None:
        """Opening what is already open updates it and keeps the original start of the
        page; anything else is a new occurrence (the earlier ones are kept)."""
        number = self._open_incidents.get(incident.dedup_key) if incident.is_open else None
        if number is None:
            number = next(self._incident_ids)
        else:
            incident = replace(incident, opened_at=self._incidents[number].opened_at)
        self._incidents[number] = incident
        if incident.is_open:
            self._open_incidents[incident.dedup_key] = number

    def _prune_resolved_incidents(self) -> None:
        resolved = [n for n, i in self._incidents.items() if not i.is_open]
        for number in resolved[: max(len(resolved) - self._retention.resolved_incidents, 0)]:
            del self._incidents[number]
        for row_id in [r for r, (n, _) in self._events.items() if n not in self._incidents]:
            del self._events[row_id]

    def _keep_event(self, row_id: int, channel: str, event: AlertEvent, now: datetime) -> None:
        """Files the event under its key's latest occurrence (the one just opened or
        resolved); an event for a key with no occurrence is not incident history."""
        numbers = [n for n, i in self._incidents.items() if i.dedup_key == event.dedup_key]
        if numbers:
            kept = IncidentEventRecord(action=event.action, channel=channel, queued_at=now)
            self._events[row_id] = (max(numbers), kept)

    def _row(self, item_id: int, operation: str) -> _OutboxRow:
        row = self._outbox.get(item_id)
        if row is None:
            raise StoreError(f"{operation}: no outbox row with id {item_id}")
        return row

    def _prune_finished(self, now: datetime) -> None:
        cutoff = now - self._retention.finished_outbox_age
        finished = sorted(
            (r for r in self._outbox.values() if r.status in FINISHED),
            key=lambda r: r.id,
            reverse=True,
        )
        for index, row in enumerate(finished):
            if index >= self._retention.finished_outbox or row.created_at < cutoff:
                del self._outbox[row.id]

    async def registry_records(self) -> list[RegistryRecord]:
        return [self._registry[k] for k in sorted(self._registry)]

    async def registry_write(self, *, put: Sequence[RegistryRecord], delete: Sequence[str]) -> None:
        for record in put:
            self._registry[record.id] = record
        for record_id in delete:
            self._registry.pop(record_id, None)


def _matches(incident: Incident, number: int, query: IncidentQuery) -> bool:
    """Whether one occurrence passes `query`'s filters (what the SQL backends' WHERE says)."""
    return (
        (query.before is None or number < query.before)
        and query.rule in (None, incident.rule)
        and query.open in (None, incident.is_open)
        and query.integration in (None, incident.details.get("integration"))
        and query.provider in (None, incident.details.get("provider"))
        and (query.tenant is None or query.tenant in incident.tenants)
    )

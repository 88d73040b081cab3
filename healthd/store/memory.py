"""The reference Store: plain dicts in one process, lost on exit.

It defines the semantics the SQLite store must match (the contract suite runs both), and
serves unit tests of the runner, rules and outbox that do not care about durability. The
methods are coroutines for the protocol's sake but never await: each one runs to
completion without yielding, which is what makes its claims atomic.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from healthd.errors import StoreError
from healthd.model import (
    AlertEvent,
    Incident,
    IntegrationState,
    OutboxItem,
    OutboxStatus,
    ProbeResult,
    Transition,
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
        self._incidents: dict[str, Incident] = {}
        self._outbox: dict[int, _OutboxRow] = {}
        self._ids = itertools.count(1)
        self._meta: dict[str, str] = {}

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

    async def latest_results(self) -> dict[str, ProbeResult]:
        return dict(self._results)

    async def transitions(self, integration_id: str, limit: int = 20) -> list[Transition]:
        kept = self._transitions.get(integration_id, [])
        return list(reversed(kept))[:limit]

    async def open_incidents(self) -> list[Incident]:
        found = [i for i in self._incidents.values() if i.is_open]
        return sorted(found, key=lambda i: (i.opened_at, i.dedup_key))

    async def recent_incidents(self, limit: int = 50) -> list[Incident]:
        # Open first (newest opened first), then resolved (most recently resolved first).
        ordered = sorted(
            self._incidents.values(),
            key=lambda i: (
                not i.is_open,
                -(i.resolved_at or i.opened_at).timestamp(),
                -i.opened_at.timestamp(),
                i.dedup_key,
            ),
        )
        return ordered[:limit]

    async def apply_alerts(
        self,
        *,
        opened: Sequence[Incident],
        resolved: Sequence[tuple[str, datetime]],
        events: Sequence[tuple[str, AlertEvent]],
        now: datetime,
    ) -> None:
        for incident in opened:
            existing = self._incidents.get(incident.dedup_key)
            if existing is not None and existing.is_open:
                # Opening what is already open keeps the original start of the page.
                incident = replace(incident, opened_at=existing.opened_at)
            self._incidents[incident.dedup_key] = incident
        for dedup_key, at in resolved:
            existing = self._incidents.get(dedup_key)
            if existing is not None and existing.is_open:
                self._incidents[dedup_key] = replace(existing, resolved_at=at)
        for channel, event in events:
            row_id = next(self._ids)
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

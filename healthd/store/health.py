"""Whether the store is keeping up, as its users see it: a wrapper that watches every call.

A store that cannot write (a full disk, a file replaced under the daemon) must not hide an
outage. Its users keep going in memory (the runner's states are the truth, the engine's
open incidents and the outbox's held events wait in memory) and catch the store up when it
accepts writes again; this module is how everyone learns that it is failing:

- `MonitoredStore` wraps the real store. A call that raises `StoreError` marks the store
  failing (`StoreHealth.failed`, an error log once per episode, a count per operation);
  the next write that succeeds marks it healthy again (an info log). The error is re-raised:
  each caller decides how to keep what it could not write.
- `StoreHealth` is what `/readyz` (not ready while failing, with the reason), the
  `healthd_store_healthy` gauge and the `store_failing` alert rule read.

The reason is the store's own error text (the file and SQLite's message), never a secret.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import datetime
from typing import Any, TypeVar

import structlog

from healthd.clock import Clock
from healthd.errors import StoreError
from healthd.interfaces import Store
from healthd.model import (
    AlertEvent,
    Bucket,
    DeliveryOutcome,
    Incident,
    IncidentQuery,
    IncidentRecord,
    IntegrationState,
    OutboxItem,
    ProbeResult,
    RegistryRecord,
    Transition,
)

log = structlog.get_logger("healthd.store")

T = TypeVar("T")


class StoreHealth:
    """The store's health as last seen: failing since when, and why (None when healthy)."""

    def __init__(self, clock: Clock, on_error: Callable[[str], None] | None = None) -> None:
        self._clock = clock
        self._on_error = on_error
        self.failing_since: datetime | None = None
        self.reason: str | None = None

    @property
    def healthy(self) -> bool:
        return self.failing_since is None

    def failed(self, operation: str, exc: StoreError) -> None:
        if self._on_error is not None:
            self._on_error(operation)
        self.reason = str(exc)
        if self.failing_since is None:
            self.failing_since = self._clock.now()
            log.error("store_failing", operation=operation, error=self.reason)

    def succeeded(self) -> None:
        if self.failing_since is not None:
            log.info("store_recovered", failing_since=self.failing_since.isoformat())
        self.failing_since = None
        self.reason = None


class MonitoredStore:
    """A Store that reports each call's outcome to `health`; see `healthd.interfaces.Store`.

    `open` and `close` pass through unwatched: a store that cannot open stops the start.
    """

    def __init__(self, inner: Store, health: StoreHealth) -> None:
        self.inner = inner
        self.health = health

    async def _watch(self, operation: str, call: Awaitable[T], *, write: bool = True) -> T:
        """Only a write that succeeds proves the store healthy: a full disk still reads."""
        try:
            value = await call
        except StoreError as exc:
            self.health.failed(operation, exc)
            raise
        if write:
            self.health.succeeded()
        return value

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def load_states(self) -> dict[str, IntegrationState]:
        return await self._watch("load_states", self.inner.load_states(), write=False)

    async def record_run(
        self, state: IntegrationState, result: ProbeResult, transitions: Sequence[Transition]
    ) -> None:
        await self._watch("record_run", self.inner.record_run(state, result, transitions))

    async def latest_results(self) -> dict[str, ProbeResult]:
        return await self._watch("latest_results", self.inner.latest_results(), write=False)

    async def transitions(self, integration_id: str, limit: int = 20) -> list[Transition]:
        return await self._watch(
            "transitions", self.inner.transitions(integration_id, limit), write=False
        )

    async def open_incidents(self) -> list[Incident]:
        return await self._watch("open_incidents", self.inner.open_incidents(), write=False)

    async def apply_alerts(
        self,
        *,
        opened: Sequence[Incident],
        resolved: Sequence[tuple[str, datetime]],
        events: Sequence[tuple[str, AlertEvent]],
        now: datetime,
    ) -> None:
        await self._watch(
            "apply_alerts",
            self.inner.apply_alerts(opened=opened, resolved=resolved, events=events, now=now),
        )

    async def claim_due(self, now: datetime, limit: int = 50) -> list[OutboxItem]:
        return await self._watch("claim_due", self.inner.claim_due(now, limit))

    async def mark_sent(self, item_id: int, now: datetime) -> None:
        await self._watch("mark_sent", self.inner.mark_sent(item_id, now))

    async def mark_retry(self, item_id: int, next_attempt_at: datetime, error: str) -> None:
        await self._watch("mark_retry", self.inner.mark_retry(item_id, next_attempt_at, error))

    async def mark_rejected(self, item_id: int, error: str) -> None:
        await self._watch("mark_rejected", self.inner.mark_rejected(item_id, error))

    async def requeue_stale(self) -> int:
        return await self._watch("requeue_stale", self.inner.requeue_stale())

    async def outbox_pending(self) -> dict[str, int]:
        return await self._watch("outbox_pending", self.inner.outbox_pending(), write=False)

    async def outbox_oldest_pending(self, now: datetime) -> float | None:
        return await self._watch(
            "outbox_oldest_pending", self.inner.outbox_oldest_pending(now), write=False
        )

    async def get_meta(self, key: str) -> Any:
        return await self._watch("get_meta", self.inner.get_meta(key), write=False)

    async def set_meta(self, key: str, value: Any) -> None:
        await self._watch("set_meta", self.inner.set_meta(key, value))

    # -- history (issue 15) ---------------------------------------------------------------

    async def buckets(
        self, integration_id: str, span_seconds: int, since: datetime
    ) -> list[Bucket]:
        return await self._watch(
            "buckets", self.inner.buckets(integration_id, span_seconds, since), write=False
        )

    async def fleet_buckets(
        self, ids: Collection[str], span_seconds: int, since: datetime
    ) -> dict[str, list[Bucket]]:
        return await self._watch(
            "fleet_buckets", self.inner.fleet_buckets(ids, span_seconds, since), write=False
        )

    async def fleet_totals(
        self, ids: Collection[str], span_seconds: int, since: datetime
    ) -> dict[str, Bucket]:
        return await self._watch(
            "fleet_totals", self.inner.fleet_totals(ids, span_seconds, since), write=False
        )

    async def incident_history(self, query: IncidentQuery) -> list[IncidentRecord]:
        return await self._watch(
            "incident_history", self.inner.incident_history(query), write=False
        )

    # -- the delivery ledger -----------------------------------------------------------

    async def record_deliveries(self, outcomes: Sequence[DeliveryOutcome]) -> list[DeliveryOutcome]:
        return await self._watch("record_deliveries", self.inner.record_deliveries(outcomes))

    async def counted_deliveries(self, since: datetime) -> list[DeliveryOutcome]:
        return await self._watch(
            "counted_deliveries", self.inner.counted_deliveries(since), write=False
        )

    async def delivery_examples(
        self, integration_id: str, provider_code: str, since: datetime, limit: int
    ) -> list[DeliveryOutcome]:
        return await self._watch(
            "delivery_examples",
            self.inner.delivery_examples(integration_id, provider_code, since, limit),
            write=False,
        )

    async def registry_records(self) -> list[RegistryRecord]:
        return await self._watch("registry_records", self.inner.registry_records(), write=False)

    async def registry_write(self, *, put: Sequence[RegistryRecord], delete: Sequence[str]) -> None:
        await self._watch("registry_write", self.inner.registry_write(put=put, delete=delete))

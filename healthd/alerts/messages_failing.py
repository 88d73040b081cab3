"""The tenant's `messages_failing` event: "tell me in real time when messages fail".

Every failed message the delivery ledger counts (a final status with an error: failed,
undelivered, bounce, dropped) is gathered here per integration; at most once per
`interval` (a minute) per integration, what was gathered goes to the tenant's webhook as
one event, through the outbox like every alert event: the number of failures, by
category, and the top codes with their fixes. A burst of ten thousand failures is one
event, not a storm; failures that arrive within the minute after an event wait for the
next one. A tenant without a webhook gets nothing queued (`routing.deliverable`).

What is gathered lives in memory until it is queued: a crash loses at most one minute's
summary, never the counts (the ledger holds those in the store).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta

from healthd.alerts import _tenant_events as tenant_events
from healthd.alerts.settings import AlertingSettings
from healthd.catalog import Catalog
from healthd.clock import Clock
from healthd.interfaces import Store
from healthd.model import AlertEvent, DeliveryOutcome, DeliveryStage, Integration

RULE = "messages_failing"
INTERVAL = timedelta(minutes=1)


class MessagesFailing:
    """`observe` each counted outcome; `flush` (or `run`) queues the due events."""

    def __init__(
        self,
        *,
        store: Store,
        settings: AlertingSettings,
        integrations: Mapping[str, Integration],
        catalog: Catalog,
        clock: Clock,
        interval: timedelta = INTERVAL,
    ) -> None:
        self._store = store
        self._settings = settings
        self._integrations = integrations
        self._catalog = catalog
        self._clock = clock
        self._interval = interval
        # Per integration: failures by (provider code, category) since its last event.
        self._pending: dict[str, Counter[tuple[str | None, str]]] = {}
        self._last: dict[str, datetime] = {}

    def observe(self, outcome: DeliveryOutcome) -> None:
        if outcome.stage is not DeliveryStage.FINAL or outcome.category is None:
            return  # delivered, canceled, or not over yet
        key = (outcome.provider_code, outcome.category.value)
        self._pending.setdefault(outcome.integration_id, Counter())[key] += 1

    async def flush(self) -> int:
        """Queues one event for each integration whose failures are due; returns how many."""
        now = self._clock.now()
        due: list[tuple[str, Counter[tuple[str | None, str]]]] = []
        for integration_id in list(self._pending):
            last = self._last.get(integration_id)
            if last is None or now - last >= self._interval:
                due.append((integration_id, self._pending.pop(integration_id)))
        events = []
        for integration_id, failures in due:
            integration = self._integrations.get(integration_id)
            if integration is None:
                continue
            channel = tenant_events.webhook_channel(integration, self._settings)
            if channel is not None:
                events.append((channel, self._event(integration, failures, now)))
        if not events:
            return 0
        if not await tenant_events.queue(self._store, RULE, events, now):
            for integration_id, failures in due:  # gathered again, for the next flush
                self._pending.setdefault(integration_id, Counter()).update(failures)
            return 0
        for integration_id, _ in due:
            self._last[integration_id] = now
        return len(events)

    async def run(self, stop: asyncio.Event, tick: float) -> None:
        await tenant_events.flush_every(stop, tick, self.flush)

    def _event(
        self, integration: Integration, failures: Counter[tuple[str | None, str]], now: datetime
    ) -> AlertEvent:
        total = sum(failures.values())
        by_category: Counter[str] = Counter()
        for (_, category), n in failures.items():
            by_category[category] += n
        top = tenant_events.top_codes(self._catalog, integration.provider, failures)
        return tenant_events.warning(
            RULE,
            integration,
            now,
            summary=f"{total} message(s) failed on {integration.name};"
            f" top codes: {tenant_events.codes_text(top)}",
            details={"failed": total, "by_category": dict(by_category), "top_codes": top},
        )

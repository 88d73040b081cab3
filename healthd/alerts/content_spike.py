"""The tenant's `content_spike` warning: carriers are filtering more of its messages.

Content errors (30007 carrier filtering and the catalogue's other content codes) never
page on-call: the fix is the message text, the tenant's own. What the tenant needs to
hear is that filtering is rising. When the share of an integration's messages with a
content error over the last 15 minutes reaches `rate` (5 %) of at least `min_messages`,
and is above its share in the 45 minutes before (rising, not a level the tenant already
lives with), the tenant's webhook gets one `content_spike` event through the outbox, with
the counts and the top codes and their fixes. It is not sent again until the share has
fallen below `rate` (the warning re-arms), so a spike is one event, however long it lasts.

The counts are the delivery ledger's windows (`counts`), every counted outcome of the
integration; only integrations that counted a content error since are looked at, so a
flush costs nothing for the rest of the fleet.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from healthd.alerts import _tenant_events as tenant_events
from healthd.alerts.settings import AlertingSettings
from healthd.catalog import Catalog
from healthd.clock import Clock
from healthd.interfaces import Store
from healthd.ledger import Key, Window
from healthd.model import AlertEvent, Category, DeliveryOutcome, Integration

RULE = "content_spike"
RATE = 0.05
MIN_MESSAGES = 20
CONTENT = Category.CONTENT.value

Counts = Callable[[str, Window, datetime], Counter[Key]]


@dataclass(frozen=True, slots=True)
class _Share:
    content: Counter[str | None]  # content errors by provider code
    total: int

    @classmethod
    def of(cls, counts: Counter[Key]) -> _Share:
        content: Counter[str | None] = Counter()
        for key, n in counts.items():
            if key.category == CONTENT:
                content[key.provider_code] += n
        return cls(content, sum(counts.values()))

    @property
    def rate(self) -> float:
        return sum(self.content.values()) / self.total if self.total else 0.0


class ContentSpike:
    """`observe` each counted outcome; `flush` queues the due warnings."""

    def __init__(
        self,
        *,
        store: Store,
        settings: AlertingSettings,
        integrations: Mapping[str, Integration],
        catalog: Catalog,
        clock: Clock,
        counts: Counts,
        rate: float = RATE,
        min_messages: int = MIN_MESSAGES,
    ) -> None:
        self._store = store
        self._settings = settings
        self._integrations = integrations
        self._catalog = catalog
        self._clock = clock
        self._counts = counts
        self._rate = rate
        self._min_messages = min_messages
        self._watched: set[str] = set()  # counted a content error, or warned and still high
        self._warned: set[str] = set()

    async def run(self, stop: asyncio.Event, tick: float) -> None:
        await tenant_events.flush_every(stop, tick, self.flush)

    def observe(self, outcome: DeliveryOutcome) -> None:
        if outcome.category is Category.CONTENT:
            self._watched.add(outcome.integration_id)

    async def flush(self) -> int:
        """Queues a warning for each watched integration whose spike is new; returns how many."""
        now = self._clock.now()
        due: list[tuple[Integration, _Share]] = []
        for integration_id in list(self._watched):
            quarter = self._counts(integration_id, Window.QUARTER, now)
            recent = _Share.of(quarter)
            if recent.total < self._min_messages or recent.rate < self._rate:
                self._watched.discard(integration_id)
                self._warned.discard(integration_id)  # fallen back: the next spike warns
                continue
            before = _Share.of(self._counts(integration_id, Window.HOUR, now) - quarter)
            integration = self._integrations.get(integration_id)
            if integration_id in self._warned or recent.rate <= before.rate or integration is None:
                continue
            due.append((integration, recent))
        events = [
            (channel, self._event(integration, share, now))
            for integration, share in due
            if (channel := tenant_events.webhook_channel(integration, self._settings)) is not None
        ]
        if events and not await tenant_events.queue(self._store, RULE, events, now):
            return 0  # still watched and not warned: tried again at the next flush
        self._warned.update(integration.id for integration, _ in due)
        return len(events)

    def _event(self, integration: Integration, share: _Share, now: datetime) -> AlertEvent:
        filtered = sum(share.content.values())
        top = tenant_events.top_codes(self._catalog, integration.provider, share.content)
        return tenant_events.warning(
            RULE,
            integration,
            now,
            summary=(
                f"Carriers filtered {filtered} of {share.total} message(s) ({share.rate:.0%})"
                f" on {integration.name} in the last 15 min, more than before;"
                f" codes: {tenant_events.codes_text(top)}"
            ),
            details={
                "window": Window.QUARTER.value,
                "filtered": filtered,
                "messages": share.total,
                "top_codes": top,
            },
        )

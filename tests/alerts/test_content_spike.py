"""`content_spike`: rising carrier filtering warns the tenant's webhook once, never on-call."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from healthd.alerts.content_spike import ContentSpike
from healthd.alerts.settings import AlertingSettings
from healthd.clock import FakeClock
from healthd.ledger import Key, Window
from healthd.ledger.windows import Windows
from healthd.model import OutboxItem
from healthd.store import MemoryStore
from tests.alerts.test_messages_failing import (
    CATALOG,
    HOOKS,
    T0,
    TWILIO,
    RefusingStore,
    failed,
)

DELIVERED = Key("delivered", None, None)
FILTERED = Key("undelivered", "30007", "content")


class Fleet:
    """One integration's ledger windows, fed by hand, and the warnings they raise."""

    def __init__(
        self, webhooks: dict[str, object] | None = None, store: MemoryStore | None = None
    ) -> None:
        self.windows = Windows()
        self.store, self.clock = store or MemoryStore(), FakeClock(T0)
        self.spike = ContentSpike(
            store=self.store,
            settings=AlertingSettings.model_validate(
                {"webhooks": HOOKS if webhooks is None else webhooks}
            ),
            integrations={TWILIO.id: TWILIO},
            catalog=CATALOG,
            clock=self.clock,
            counts=self.counts,
        )

    def counts(self, integration_id: str, window: Window, now: datetime) -> Counter[Key]:
        return self.windows.counts(window, now) if integration_id == TWILIO.id else Counter()

    def count(self, delivered: int, filtered: int) -> None:
        """Messages counted now; each filtered one is observed as the ledger would tell it."""
        for _ in range(delivered):
            self.windows.add(DELIVERED, self.clock.now())
        for n in range(filtered):
            self.windows.add(FILTERED, self.clock.now())
            self.spike.observe(failed(n, "30007"))

    async def queued(self) -> list[OutboxItem]:
        return await self.store.claim_due(self.clock.now(), limit=1000)


async def test_rising_filtering_is_one_warning_to_the_tenants_webhook_with_the_fix() -> None:
    fleet = Fleet()
    fleet.count(delivered=95, filtered=1)
    fleet.clock.advance(timedelta(minutes=30))
    fleet.count(delivered=36, filtered=4)
    assert await fleet.spike.flush() == 1
    (item,) = await fleet.queued()

    assert (item.channel, item.event.rule, item.event.severity.value) == (
        "webhook:acme",
        "content_spike",
        "warning",
    )
    assert item.event.custom_details["filtered"] == 4
    assert item.event.custom_details["messages"] == 40
    (top,) = item.event.custom_details["top_codes"]
    assert top["provider_code"] == "30007" and top["fix"]


async def test_a_spike_that_lasts_warns_once_and_again_only_after_it_fell_back() -> None:
    fleet = Fleet()
    fleet.count(delivered=36, filtered=4)
    first = await fleet.spike.flush()
    fleet.clock.advance(timedelta(minutes=1))
    fleet.count(delivered=0, filtered=2)
    lasting = await fleet.spike.flush()
    fleet.clock.advance(timedelta(minutes=16))
    fleet.count(delivered=40, filtered=1)
    fallen = await fleet.spike.flush()
    fleet.clock.advance(timedelta(minutes=16))
    fleet.count(delivered=30, filtered=10)
    again = await fleet.spike.flush()

    assert (first, lasting, fallen, again) == (1, 0, 0, 1)


async def test_a_steady_filtering_level_is_not_a_spike() -> None:
    fleet = Fleet()
    fleet.count(delivered=90, filtered=10)
    fleet.clock.advance(timedelta(minutes=30))
    fleet.count(delivered=45, filtered=5)
    assert await fleet.spike.flush() == 0


async def test_below_the_minimum_volume_nothing_is_judged() -> None:
    fleet = Fleet()
    fleet.count(delivered=10, filtered=5)
    assert await fleet.spike.flush() == 0


async def test_a_content_spike_never_goes_to_on_call() -> None:
    fleet = Fleet(webhooks={})
    fleet.count(delivered=36, filtered=4)
    assert await fleet.spike.flush() == 0
    assert await fleet.queued() == []


async def test_a_warning_the_store_refused_to_queue_is_queued_at_the_next_flush() -> None:
    fleet = Fleet(store=RefusingStore(refusals=1))
    fleet.count(delivered=36, filtered=4)
    refused = await fleet.spike.flush()
    assert (refused, await fleet.spike.flush()) == (0, 1)
    (item,) = await fleet.queued()
    assert item.event.custom_details["filtered"] == 4

"""`messages_failing`: failed messages reach the tenant's webhook as one event a minute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from healthd.alerts.messages_failing import MessagesFailing
from healthd.alerts.settings import AlertingSettings
from healthd.catalog import load
from healthd.clock import FakeClock
from healthd.errors import StoreError
from healthd.model import (
    Category,
    DeliveryOutcome,
    DeliveryStage,
    Integration,
    OutboxItem,
    Thresholds,
)
from healthd.secrets import Secret
from healthd.store import MemoryStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CATALOG = load()
HOOKS = {"acme": {"url": "https://hooks.acme.test/healthd", "secret": Secret("w")}}
TWILIO = Integration(
    id="acme-twilio",
    provider="twilio",
    tenant="acme",
    base_url="https://api.twilio.com",
    page=False,
    interval=timedelta(minutes=1),
    timeout=timedelta(seconds=10),
    thresholds=Thresholds(),
    name="Acme SMS",
)


def failed(n: int, code: str | None = "30003", status: str = "undelivered") -> DeliveryOutcome:
    entry = CATALOG.get("twilio", code) if code else None
    return DeliveryOutcome(
        integration_id=TWILIO.id,
        message_id=f"SM{n}",
        status=status,
        stage=DeliveryStage.FINAL,
        category=entry.category if entry else (None if status == "delivered" else Category.UNKNOWN),
        provider_code=code,
        at=T0,
    )


class RefusingStore(MemoryStore):
    """A memory store that refuses its next `refusals` outbox writes, as a full disk would."""

    def __init__(self, refusals: int) -> None:
        super().__init__()
        self.refusals = refusals

    async def apply_alerts(self, **changes: Any) -> None:
        if self.refusals:
            self.refusals -= 1
            raise StoreError("disk full")
        await super().apply_alerts(**changes)


def setup(
    webhooks: dict[str, object] | None = None, store: MemoryStore | None = None
) -> tuple[MessagesFailing, MemoryStore, FakeClock]:
    store, clock = store or MemoryStore(), FakeClock(T0)
    settings = AlertingSettings.model_validate(
        {"webhooks": HOOKS if webhooks is None else webhooks}
    )
    failing = MessagesFailing(
        store=store,
        settings=settings,
        integrations={TWILIO.id: TWILIO},
        catalog=CATALOG,
        clock=clock,
    )
    return failing, store, clock


async def queued(store: MemoryStore, clock: FakeClock) -> list[OutboxItem]:
    return await store.claim_due(clock.now(), limit=1000)


async def test_a_burst_of_failures_is_one_event_with_counts_and_top_codes_with_fixes() -> None:
    failing, store, clock = setup()
    for n in range(40):
        failing.observe(failed(n))
    for n in range(40, 50):
        failing.observe(failed(n, "21610", "failed"))
    failing.observe(failed(99, None, "delivered"))
    assert await failing.flush() == 1
    (item,) = await queued(store, clock)
    details = item.event.custom_details
    assert item.channel == "webhook:acme" and item.event.rule == "messages_failing"
    assert details["failed"] == 50
    assert details["by_category"] == {"recipient": 50}
    assert [(t["provider_code"], t["count"]) for t in details["top_codes"]] == [
        ("30003", 40),
        ("21610", 10),
    ]
    assert all(t["fix"] for t in details["top_codes"])


async def test_failures_within_the_minute_after_an_event_wait_for_the_next_one() -> None:
    failing, store, clock = setup()
    failing.observe(failed(1))
    assert await failing.flush() == 1
    clock.advance(timedelta(seconds=20))
    failing.observe(failed(2))
    failing.observe(failed(3))
    assert await failing.flush() == 0
    clock.advance(timedelta(seconds=40))
    assert await failing.flush() == 1
    events = [i.event for i in await queued(store, clock)]
    assert [e.custom_details["failed"] for e in events] == [1, 2]


async def test_delivered_messages_queue_nothing() -> None:
    failing, store, clock = setup()
    failing.observe(failed(1, None, "delivered"))
    assert await failing.flush() == 0
    assert await queued(store, clock) == []


async def test_a_tenant_without_a_webhook_gets_nothing_queued() -> None:
    failing, store, clock = setup(webhooks={})
    failing.observe(failed(1))
    assert await failing.flush() == 0
    assert await queued(store, clock) == []


async def test_failures_the_store_refused_to_queue_are_told_at_the_next_flush() -> None:
    failing, store, clock = setup(store=RefusingStore(refusals=1))
    for n in range(3):
        failing.observe(failed(n))
    refused = await failing.flush()
    failing.observe(failed(3))
    assert (refused, await failing.flush()) == (0, 1)
    (item,) = await queued(store, clock)
    assert item.event.custom_details["failed"] == 4

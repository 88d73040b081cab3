"""What the store tests share, so that the contract suite and each backend's own tests do
it alike: the alert events and incidents they write (one builder each), and the opening
of stores that are all closed at the end of the test."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from healthd.interfaces import Store
from healthd.model import AlertEvent, EventAction, Incident

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

S = TypeVar("S", bound=Store)


@contextlib.asynccontextmanager
async def opening() -> AsyncIterator[Callable[[S], Awaitable[S]]]:
    """`open_(store)` opens `store` and hands it back; each store opened so is closed when
    the block ends (a fixture's teardown), in the order they were opened."""
    opened: list[Store] = []

    async def open_(store: S) -> S:
        await store.open()
        opened.append(store)
        return store

    try:
        yield open_
    finally:
        for store in opened:
            await store.close()


def alert_event(dedup_key: str = "bridge", action: EventAction = EventAction.TRIGGER) -> AlertEvent:
    """A bridge page's event, every field the outbox keeps set."""
    return AlertEvent(
        rule="bridge_unreachable",
        action=action,
        dedup_key=dedup_key,
        summary=f"{dedup_key} {action.value}",
        source="healthd",
        custom_details={"integration": "bridge-dc1"},
        links=(("https://status.example/bridge", "status"),),
        timestamp=T0,
    )


def open_incident(dedup_key: str, opened_at: datetime = T0) -> Incident:
    """A bridge page's incident, opened at `opened_at` and not resolved."""
    return Incident(
        dedup_key=dedup_key,
        rule="bridge_unreachable",
        summary=f"{dedup_key} is down",
        opened_at=opened_at,
        details={"integration": "bridge-dc1"},
    )

"""What the tenant's delivery events (`messages_failing`, `content_spike`) share.

Both watch the delivery ledger's outcomes of an integration and tell its tenant's webhook,
through the outbox, as a warning that opens no incident. So both need the same four
things, kept here so that the two cannot drift apart: the channel (the tenant's webhook,
when it has one), the top codes with the catalogue's title and fix, the event's frame
(one dedup key per integration and second, the integration in the details), and the
queueing, which tells the caller whether the store took the events so that it can keep
what they told for its next flush. And the loop that flushes them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import structlog

from healthd.alerts import channels, routing
from healthd.alerts.settings import AlertingSettings
from healthd.catalog import Catalog
from healthd.errors import StoreError
from healthd.interfaces import Store
from healthd.model import AlertEvent, EventAction, Integration, Severity

log = structlog.get_logger("healthd.alerts")

TOP_CODES = 3
NO_CODE = "none"  # how the summary names a failure that came without a provider code

Code = str | None


def webhook_channel(integration: Integration, settings: AlertingSettings) -> str | None:
    """The channel of the integration's tenant's webhook; None when it has none (nothing
    is queued then)."""
    channel = channels.webhook(integration.tenant)
    return channel if routing.deliverable(channel, settings) else None


def top_codes(
    catalog: Catalog, provider: str, counts: Counter[Code] | Counter[tuple[Code, str]]
) -> list[dict[str, Any]]:
    """The `TOP_CODES` most counted keys, each with its count and the catalogue's title and
    fix for its code (None for no code, or one the catalogue does not know).

    A key is a provider code, or a (provider code, category) pair: then the category is
    told beside the code, and the same code in two categories is two entries."""
    top = []
    for key, count in counts.most_common(TOP_CODES):
        code, labels = (key[0], {"category": key[1]}) if isinstance(key, tuple) else (key, {})
        entry = None if code is None else catalog.get(provider, code)
        top.append(
            {
                "provider_code": code,
                **labels,
                "count": count,
                "title": entry.title if entry else None,
                "fix": entry.fix if entry else None,
            }
        )
    return top


def codes_text(top: Sequence[Mapping[str, Any]]) -> str:
    """The top codes as a summary lists them: `30007 (4), 30003 (1)`."""
    return ", ".join(f"{t['provider_code'] or NO_CODE} ({t['count']})" for t in top)


def warning(
    rule: str,
    integration: Integration,
    now: datetime,
    *,
    summary: str,
    details: Mapping[str, Any],
) -> AlertEvent:
    """A warning about `integration` for its tenant: one dedup key per second (each event
    stands alone; nothing resolves it), the integration first in the custom details."""
    return AlertEvent(
        rule=rule,
        action=EventAction.TRIGGER,
        dedup_key=f"{rule}:{integration.id}:{int(now.timestamp())}",
        summary=summary,
        source=integration.id,
        severity=Severity.WARNING,
        component=integration.provider,
        group=integration.tenant,
        custom_details={"integration": integration.id, **details},
        timestamp=now,
    )


async def queue(
    store: Store, rule: str, events: Sequence[tuple[str, AlertEvent]], now: datetime
) -> bool:
    """Puts `events` (channel, event) in the outbox in one transaction. False when the
    store refused them (logged): the caller keeps what they told, for its next flush."""
    try:
        await store.apply_alerts(opened=(), resolved=(), events=events, now=now)
    except StoreError as exc:
        log.error("tenant_event_not_queued", rule=rule, events=len(events), error=str(exc))
        return False
    return True


async def flush_every(
    stop: asyncio.Event, tick: float, flush: Callable[[], Awaitable[int]]
) -> None:
    """Calls `flush` every `tick` seconds until `stop` is set (the tenant events' loop)."""
    while not stop.is_set():
        await flush()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), tick)

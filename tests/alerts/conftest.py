"""A test double of the outbox part of the `Store` protocol, event builders, and a fake
PagerDuty Events API served over TLS on loopback (a trustme CA made per test module).

`OutboxStoreDouble` keeps only what the outbox worker touches (claim_due, mark_sent,
mark_retry, mark_rejected) with the semantics the real stores promise: rows are claimed in
id order, at most one row per (channel, dedup key) at a time (a later row waits while an
older one is unsent), `mark_retry` counts a failed attempt. It is not a Store.
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web

from healthd.clock import FakeClock
from healthd.model import AlertEvent, EventAction, OutboxItem, OutboxStatus

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class OutboxStoreDouble:
    def __init__(self) -> None:
        self.rows: dict[int, OutboxItem] = {}
        self._next_id = 1

    def enqueue(self, channel: str, event: AlertEvent, now: datetime) -> int:
        item_id, self._next_id = self._next_id, self._next_id + 1
        self.rows[item_id] = OutboxItem(
            id=item_id,
            channel=channel,
            event=event,
            status=OutboxStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        return item_id

    def _update(self, item_id: int, **changes: object) -> None:
        self.rows[item_id] = dataclasses.replace(self.rows[item_id], **changes)  # type: ignore[arg-type]

    async def claim_due(self, now: datetime, limit: int = 50) -> list[OutboxItem]:
        claimed: list[OutboxItem] = []
        blocked: set[tuple[str, str]] = set()
        for item in sorted(self.rows.values(), key=lambda i: i.id):
            key = (item.channel, item.event.dedup_key)
            if item.status not in (OutboxStatus.PENDING, OutboxStatus.SENDING):
                continue
            if key in blocked or item.status is OutboxStatus.SENDING:
                blocked.add(key)
                continue
            blocked.add(key)
            if item.next_attempt_at <= now and len(claimed) < limit:
                self._update(item.id, status=OutboxStatus.SENDING)
                claimed.append(self.rows[item.id])
        return claimed

    async def mark_sent(self, item_id: int, now: datetime) -> None:
        self._update(item_id, status=OutboxStatus.SENT)

    async def mark_retry(self, item_id: int, next_attempt_at: datetime, error: str) -> None:
        row = self.rows[item_id]
        self._update(
            item_id,
            status=OutboxStatus.PENDING,
            attempts=row.attempts + 1,
            next_attempt_at=next_attempt_at,
            last_error=error,
        )

    async def mark_rejected(self, item_id: int, error: str) -> None:
        self._update(item_id, status=OutboxStatus.REJECTED, last_error=error)

    def status(self, item_id: int) -> OutboxStatus:
        return self.rows[item_id].status


def make_event(
    action: EventAction = EventAction.TRIGGER,
    dedup_key: str = "healthd/bridge_unreachable/bridge-dc1",
    rule: str = "bridge_unreachable",
    **fields: object,
) -> AlertEvent:
    return AlertEvent(
        rule=rule,
        action=action,
        dedup_key=dedup_key,
        summary=str(fields.pop("summary", "iMessage bridge unreachable for 12m (bridge-dc1)")),
        source=str(fields.pop("source", "healthd")),
        **fields,  # type: ignore[arg-type]
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def store() -> OutboxStoreDouble:
    return OutboxStoreDouble()


@dataclass
class FakeEventsApi:
    """Answers POST /v2/enqueue with the queued (status, body, headers); records the bodies."""

    answers: list[tuple[int, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)

    async def enqueue(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(body)
        status, answer, headers = (
            self.answers.pop(0)
            if self.answers
            else (202, {"status": "success", "message": "Event processed"}, {})
        )
        if status == 202:
            answer = {**answer, "dedup_key": body.get("dedup_key", "generated")}
        return web.json_response(answer, status=status, headers=headers)


@dataclass
class Server:
    api: FakeEventsApi
    url: str
    ca_bundle: Path


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def server(ca: trustme.CA, tmp_path: Path) -> AsyncIterator[Server]:
    api = FakeEventsApi()
    app = web.Application()
    app.router.add_post("/v2/enqueue", api.enqueue)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(tls)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    try:
        yield Server(api, f"https://127.0.0.1:{port}", bundle)
    finally:
        await runner.cleanup()

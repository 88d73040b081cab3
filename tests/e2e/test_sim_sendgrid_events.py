"""The simulator speaks SendGrid's signed Event Webhook: mail a CRM sent through it is
reported to a running daemon over real HTTP and verified by the sendgrid SDK's code there;
forged, stale and replayed batches are refused or counted once, a deferral's late bounce
is counted when it comes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest

from healthd.clock import FakeClock
from healthd.daemon import Daemon
from healthd.ledger import Key, Window
from healthd.sim.app import SimulatorThread
from healthd.sim.client import SimClient
from healthd.sim.fixtures import FROM_EMAIL, integration_entry
from tests.conftest import base_config, running_daemon

pytestmark = pytest.mark.e2e

API_KEY = "SG.sim-events-acme"
ID = "acme-sendgrid"
WEBHOOK_ID = "77d4a5da-7015-11ed-a1eb-0242ac120002"
DELIVERED = Key("delivered", None, None)
BOUNCE = Key("bounce", "5.1.1", "recipient")
DROPPED = Key("dropped", None, "recipient")
SPAM = Key("spamreport", None, "recipient")
UNSUBSCRIBED = Key("unsubscribe", None, "recipient")
# One of each, round robin, over the mail's recipients.
OUTCOMES = ["delivered", "bounce", "dropped", "deferred", "spamreport", "unsubscribe"]


async def _public_key(session: aiohttp.ClientSession, sim: SimulatorThread) -> str:
    url = f"{sim.http_url}/v3/user/webhooks/event/settings/signed/{WEBHOOK_ID}"
    async with session.get(url, headers={"Authorization": f"Bearer {API_KEY}"}) as answer:
        assert answer.status == 200
        key: str = (await answer.json())["public_key"]
        return key


async def _send_mail(session: aiohttp.ClientSession, sim: SimulatorThread, to: int) -> str:
    """What the CRM does: one mail to `to` recipients through SendGrid's mail send."""
    mail = {
        "personalizations": [{"to": [{"email": f"lead{n}@example.com"} for n in range(to)]}],
        "from": {"email": FROM_EMAIL},
        "subject": "Your quote",
        "content": [{"type": "text/plain", "value": "Here is the quote you asked for."}],
    }
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with session.post(f"{sim.http_url}/v3/mail/send", json=mail, headers=headers) as r:
        assert r.status == 202
        return r.headers["X-Message-Id"]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def daemon(
    sim: SimulatorThread,
    session: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
    secrets_env: dict[str, str],
) -> AsyncIterator[Daemon]:
    monkeypatch.setenv("ACME_SENDGRID_KEY", API_KEY)
    entry = integration_entry(
        "sendgrid",
        sim.http_url,
        API_KEY,
        id=ID,
        tenant="acme",
        credentials=lambda name: "env:ACME_SENDGRID_KEY",
        callback_public_key=await _public_key(session, sim),
    )
    # The simulator dates its batches by the real clock: healthd's starts there.
    async with running_daemon(base_config(sim, [entry]), clock=FakeClock(datetime.now(UTC))) as d:
        yield d


async def _counts(daemon: Daemon) -> dict[Key, int]:
    async with asyncio.timeout(30):
        await daemon.ledger.drained()
    return dict(daemon.ledger.counts(ID, Window.HOUR, daemon.clock.now()))


def _rejected(daemon: Daemon, outcome: str) -> float:
    labels = {"provider": "sendgrid", "outcome": outcome}
    return daemon.registry.get_sample_value("healthd_callbacks_total", labels) or 0.0


async def _send(sim_client: SimClient, daemon: Daemon, **params: object) -> dict[str, object]:
    url = f"{daemon.url}/callbacks/{ID}"
    return await asyncio.to_thread(sim_client.send_sendgrid_events, API_KEY, url, **params)


async def test_the_simulators_events_for_accepted_mail_are_counted_by_outcome(
    session: aiohttp.ClientSession, sim: SimulatorThread, sim_client: SimClient, daemon: Daemon
) -> None:
    await _send_mail(session, sim, to=12)
    sent = await _send(sim_client, daemon, outcomes=OUTCOMES, batch=5)

    # processed + final for 10, the final only for the 2 dropped, delivered before each
    # of the 4 reactions: 26 events in 6 batches.
    assert sent == {"sent": 6, "events": 26, "answers": {"200": 6}}
    assert await _counts(daemon) == {DELIVERED: 6, BOUNCE: 2, DROPPED: 2, SPAM: 2, UNSUBSCRIBED: 2}


async def test_a_deferred_messages_late_bounce_is_counted_once_when_it_comes(
    session: aiohttp.ClientSession, sim: SimulatorThread, sim_client: SimClient, daemon: Daemon
) -> None:
    await _send_mail(session, sim, to=4)
    first = await _send(sim_client, daemon, outcomes=["delivered", "deferred"])
    before = await _counts(daemon)
    late = await _send(sim_client, daemon, late="bounce")
    after = await _counts(daemon)
    again = await _send(sim_client, daemon)

    assert first["answers"] == {"200": 1}
    assert before == {DELIVERED: 2}
    assert late == {"sent": 1, "events": 2, "answers": {"200": 1}}
    assert after == {DELIVERED: 2, BOUNCE: 2}
    assert again == {"sent": 0, "events": 0, "answers": {}}


async def test_forged_and_stale_batches_are_refused_and_a_replay_is_counted_once(
    session: aiohttp.ClientSession, sim: SimulatorThread, sim_client: SimClient, daemon: Daemon
) -> None:
    await _send_mail(session, sim, to=6)
    sent = await _send(
        sim_client, daemon, outcomes=["delivered", "bounce"], replays=1, forged=2, stale=3
    )

    assert sent["answers"] == {"200": 2, "403": 5}
    assert await _counts(daemon) == {DELIVERED: 3, BOUNCE: 3}
    assert (_rejected(daemon, "forged"), _rejected(daemon, "stale")) == (2, 3)

"""Polling that misses nothing: the daemon's Twilio probe and the ledger, over the simulator."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from healthd.clock import FakeClock
from healthd.daemon import Daemon
from healthd.ledger import Key, Window
from healthd.sim.app import SimulatorThread
from healthd.sim.client import SimClient
from healthd.sim.fixtures import integration_entry
from healthd.sim.twilio import DEFAULT_TOKEN
from tests.conftest import base_config, running_daemon

pytestmark = pytest.mark.e2e

ACCOUNT_SID = "AC" + "c3" * 16
ID = "acme-twilio"
UNDELIVERED = Key("undelivered", "30003", "recipient")
DELIVERED = Key("delivered", None, None)


@pytest.fixture
def twilio_env(monkeypatch: pytest.MonkeyPatch, secrets_env: dict[str, str]) -> None:
    monkeypatch.setenv("ACME_TWILIO_SID", ACCOUNT_SID)
    monkeypatch.setenv("TWILIO_TEST_TOKEN", DEFAULT_TOKEN)


def T_NOW() -> datetime:  # noqa: N802 - read as a constant: the simulator's clock is real
    """The simulator's messages are dated by the real clock: healthd's starts there."""
    return datetime.now(UTC)


def _config(sim: SimulatorThread) -> dict[str, object]:
    credentials = {"account_sid": "env:ACME_TWILIO_SID", "auth_token": "env:TWILIO_TEST_TOKEN"}
    entry = integration_entry(
        "twilio", sim.http_url, ACCOUNT_SID, id=ID, tenant="acme", credentials=credentials
    )
    return base_config(sim, [entry])


async def _run(daemon: Daemon, clock: FakeClock, times: int) -> None:
    """`times` runs of the Twilio probe, a second apart by healthd's clock."""
    for _ in range(times):
        await daemon.runner.run_once(ID)
        clock.advance(timedelta(seconds=1))


async def _counts(daemon: Daemon, clock: FakeClock) -> dict[Key, int]:
    async with asyncio.timeout(10):
        await daemon.ledger.drained()
    return dict(daemon.ledger.counts(ID, Window.HOUR, clock.now()))


@pytest.mark.usefixtures("twilio_env")
async def test_a_late_30003_receipt_after_three_runs_is_counted_once(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    # The simulator's messages are dated by the real clock; healthd's moves by hand from now.
    clock = FakeClock(datetime.now(UTC))
    sim_client.set_scenario("twilio", "late_receipts", target=ACCOUNT_SID, count=20, late=3)
    async with running_daemon(_config(sim), clock=clock) as daemon:
        await _run(daemon, clock, 3)
        before = await _counts(daemon, clock)
        sim_client.set_scenario(
            "twilio", "late_receipts", target=ACCOUNT_SID, count=20, late=3, receipt="undelivered"
        )
        await _run(daemon, clock, 3)
        after = await _counts(daemon, clock)
        counted = daemon.registry.get_sample_value(
            "healthd_delivery_messages_total",
            {
                "provider": "twilio",
                "status": "undelivered",
                "provider_code": "30003",
                "category": "recipient",
            },
        )
        finding_runs = daemon.registry.get_sample_value(
            "healthd_findings_total",
            {
                "provider": "twilio",
                "code": "twilio.delivery_errors",
                "provider_code": "30003",
                "category": "recipient",
            },
        )

    assert before == {DELIVERED: 17}
    assert after == {DELIVERED: 17, UNDELIVERED: 3}
    assert counted == 3
    assert finding_runs == 3  # one per run that saw it, not 3 messages x 3 runs


@pytest.mark.usefixtures("twilio_env")
async def test_a_refused_request_from_monitor_alerts_is_counted_once_over_runs(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    sim_client.set_scenario("twilio", "ok", target=ACCOUNT_SID, count=10, alerts=4)
    assert await _counts_after_runs(sim, 3) == {
        DELIVERED: 10,
        Key("rejected", "21211", "recipient"): 4,
    }


async def _counts_after_runs(sim: SimulatorThread, runs: int) -> dict[Key, int]:
    clock = FakeClock(datetime.now(UTC))
    async with running_daemon(_config(sim), clock=clock) as daemon:
        await _run(daemon, clock, runs)
        return await _counts(daemon, clock)

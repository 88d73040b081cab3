"""The simulator speaks callbacks: its own messages' status callbacks (or the same statuses
as an Event Streams sink's CloudEvents), signed, replayed and forged, posted to a running
daemon, are counted once each and the forged ones refused."""

from __future__ import annotations

import asyncio

import pytest

from healthd.clock import FakeClock
from healthd.ledger import Key, Window
from healthd.sim.app import SimulatorThread
from healthd.sim.client import SimClient
from tests.conftest import running_daemon
from tests.e2e.test_delivery_polling import ACCOUNT_SID, ID, T_NOW, _config, twilio_env  # noqa: F401

pytestmark = pytest.mark.e2e


COUNTED = {Key("delivered", None, None): 15, Key("undelivered", "30007", "content"): 5}
SendParams = dict[str, object]


async def _deliver(
    sim: SimulatorThread, sim_client: SimClient, *sends: SendParams
) -> tuple[list[dict[str, object]], dict[Key, int]]:
    """Has the simulator post its messages' statuses once per `sends` entry to a running
    daemon; returns what each posting was answered and the ledger's hour once written."""
    sim_client.set_scenario("twilio", "filtering_spike", target=ACCOUNT_SID, count=20, rate=0.25)
    async with running_daemon(_config(sim), clock=FakeClock(T_NOW())) as daemon:
        url = f"{daemon.url}/callbacks/{ID}"
        sent = [
            await asyncio.to_thread(sim_client.send_twilio_callbacks, ACCOUNT_SID, url, **params)  # type: ignore[arg-type]
            for params in sends
        ]
        async with asyncio.timeout(30):
            await daemon.ledger.drained()
        return sent, dict(daemon.ledger.counts(ID, Window.HOUR, daemon.clock.now()))


@pytest.mark.usefixtures("twilio_env")
async def test_the_simulators_callbacks_are_counted_once_and_forged_ones_refused(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    [sent], counts = await _deliver(sim, sim_client, {"replays": 6, "forged": 3})

    assert sent["answers"] == {"200": 40 + 6, "403": 3}
    assert counts == COUNTED


@pytest.mark.usefixtures("twilio_env")
async def test_the_same_statuses_by_event_streams_and_by_callback_are_counted_once(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    [events, callbacks], counts = await _deliver(
        sim, sim_client, {"replays": 1, "forged": 2, "via": "events"}, {}
    )

    # 40 statuses in one batch of 50, that batch replayed, 2 forged.
    assert events["answers"] == {"200": 2, "403": 2}
    assert callbacks["answers"] == {"200": 40}
    assert counts == COUNTED

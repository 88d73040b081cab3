"""Silences end to end: the admin API, the real daemon on a FakeClock, the simulator's PagerDuty.

The API is served the way the daemon serves it: the status API's application (its auth
middleware sets the principal) with `silence_routes` added.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from healthd.api.app import Api
from healthd.api.silences import silence_routes
from healthd.clock import FakeClock
from healthd.daemon import Daemon
from healthd.metrics import MetricsEndpoint
from healthd.sim.app import SimulatorThread
from healthd.sim.client import SimClient
from tests.conftest import ADMIN_TOKEN, TENANT_TOKENS, base_config, bridge, running_daemon
from tests.scenarios.support import delivered

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("secrets_env")]

BRIDGE = "bridge-dc1"
DEDUP = f"healthd/bridge_unreachable/{BRIDGE}"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ACME = {"Authorization": f"Bearer {TENANT_TOKENS['acme']}"}


class SilenceApi:
    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.session = session

    async def call(
        self, method: str, path: str, headers: dict[str, str] = ADMIN, body: Any = None
    ) -> tuple[int, Any]:
        async with self.session.request(method, self.url + path, headers=headers, json=body) as r:
            data = await r.json() if r.content_type.endswith("json") else None
            return r.status, data

    async def add(self, **body: Any) -> dict[str, Any]:
        status, data = await self.call("POST", "/api/v1/silences", body=body)
        assert status == 201, data
        return dict(data)


@asynccontextmanager
async def silence_api(d: Daemon) -> AsyncIterator[SilenceApi]:
    api = Api(
        runner=d.runner,
        store=d.store,
        catalog=d.catalog,
        metrics=MetricsEndpoint(d.registry),
        config=d.config.api,
        ready=lambda: None,
    )
    app = api.app()
    app.add_routes(silence_routes(d.engine, d.runner.integrations))
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            yield SilenceApi(f"http://127.0.0.1:{port}", session)
    finally:
        await runner.cleanup()


async def probe(d: Daemon, clock: FakeClock, minutes: float = 1.0) -> None:
    clock.advance(timedelta(minutes=minutes))
    await d.runner.run_once(BRIDGE)
    await d.engine.evaluate()
    await d.outbox.run_once()


def actions(sim_client: SimClient) -> list[str]:
    return [e["body"]["event_action"] for e in sim_client.pagerduty_events()]


async def test_a_silenced_bridge_pages_once_when_the_silence_ends_still_down(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    clock = FakeClock()
    async with (
        running_daemon(base_config(sim, [bridge(sim)]), clock=clock) as d,
        silence_api(d) as api,
    ):
        await api.add(name="mac-mini-move", duration="30m", rules=["bridge_unreachable"])
        sim_client.set_scenario("imessage_bridge", "offline", target="dc1")
        for _ in range(29):  # down for most of the silence: past page_after, nothing sent
            await probe(d, clock)
        await delivered(d)
        assert actions(sim_client) == []
        assert await d.store.open_incidents() == []

        for _ in range(5):  # the silence ends at minute 30 with the bridge still down
            await probe(d, clock)
        await delivered(d)
        assert actions(sim_client) == ["trigger"]

        sim_client.set_scenario("imessage_bridge", "ok", target="dc1")
        for _ in range(3):
            await probe(d, clock)
        await delivered(d)

    incidents = sim_client.pagerduty_incidents()
    assert [(i["dedup_key"], i["trigger_count"], i["resolve_count"]) for i in incidents] == [
        (DEDUP, 1, 1)
    ]


async def test_a_resolve_goes_out_while_a_silence_holds(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    clock = FakeClock()
    async with (
        running_daemon(base_config(sim, [bridge(sim)]), clock=clock) as d,
        silence_api(d) as api,
    ):
        sim_client.set_scenario("imessage_bridge", "offline", target="dc1")
        for _ in range(12):
            await probe(d, clock)
        await api.add(name="everything", duration="2h")
        sim_client.set_scenario("imessage_bridge", "ok", target="dc1")
        for _ in range(3):
            await probe(d, clock)
        await delivered(d)

    assert actions(sim_client) == ["trigger", "resolve"]


async def test_a_silence_for_another_tenant_does_not_hold_back_the_page(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    clock = FakeClock()
    doc = base_config(sim, [bridge(sim), bridge(sim, "acme", id="acme-bridge", tenant="acme")])
    async with running_daemon(doc, clock=clock) as d, silence_api(d) as api:
        await api.add(name="acme-only", duration="1h", tenants=["acme"])
        sim_client.set_scenario("imessage_bridge", "offline", target="dc1")
        for _ in range(12):
            await probe(d, clock)
        await delivered(d)

    assert [e["dedup_key"] for e in sim_client.pagerduty_events()] == [DEDUP]


async def test_silences_are_listed_and_deleted_by_name(sim: SimulatorThread) -> None:
    clock = FakeClock()
    async with (
        running_daemon(base_config(sim, [bridge(sim)]), clock=clock) as d,
        silence_api(d) as api,
    ):
        created = await api.add(name="upgrade", duration="1h", providers=["imessage_bridge"])
        listed = await api.call("GET", "/api/v1/silences")
        deleted = await api.call("DELETE", "/api/v1/silences/upgrade")
        after = await api.call("GET", "/api/v1/silences")
        again = await api.call("DELETE", "/api/v1/silences/upgrade")

    assert created["name"] == "upgrade" and created["created_by"] == "ops"
    assert created["end"] == (clock.now() + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert listed == (200, {"silences": [created], "count": 1, "next_cursor": None})
    assert deleted == (204, None)
    assert after == (200, {"silences": [], "count": 0, "next_cursor": None})
    assert again[0] == 404 and again[1]["detail"] == "no silence named 'upgrade'"


async def test_a_silence_expires_by_the_clock(sim: SimulatorThread) -> None:
    clock = FakeClock()
    async with (
        running_daemon(base_config(sim, [bridge(sim)]), clock=clock) as d,
        silence_api(d) as api,
    ):
        await api.add(name="short", duration="10m")
        clock.advance(timedelta(minutes=10))
        listed = await api.call("GET", "/api/v1/silences")
        readded = await api.call(
            "POST", "/api/v1/silences", body={"name": "short", "duration": "5m"}
        )

    assert listed == (200, {"silences": [], "count": 0, "next_cursor": None})
    assert readded[0] == 201


async def test_a_silence_survives_a_restart(sim: SimulatorThread, tmp_path: Path) -> None:
    clock = FakeClock()
    doc = base_config(sim, [bridge(sim)], store=f"sqlite:///{tmp_path / 'healthd.db'}")
    async with running_daemon(doc, clock=clock) as d, silence_api(d) as api:
        created = await api.add(name="weekend", duration="2d")
    async with running_daemon(doc, clock=clock) as d, silence_api(d) as api:
        listed = await api.call("GET", "/api/v1/silences")

    assert listed == (200, {"silences": [created], "count": 1, "next_cursor": None})


async def test_a_name_in_force_cannot_be_taken_twice(sim: SimulatorThread) -> None:
    async with running_daemon(base_config(sim, [bridge(sim)])) as d, silence_api(d) as api:
        await api.add(name="dup", duration="1h")
        status, doc = await api.call(
            "POST", "/api/v1/silences", body={"name": "dup", "duration": "2h"}
        )

    assert status == 409 and "already in force" in doc["detail"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/silences"),
        ("POST", "/api/v1/silences"),
        ("DELETE", "/api/v1/silences/anything"),
    ],
)
async def test_a_tenant_token_gets_the_404_of_a_path_that_does_not_exist(
    sim: SimulatorThread, method: str, path: str
) -> None:
    async with running_daemon(base_config(sim, [bridge(sim)])) as d, silence_api(d) as api:
        answer = await api.call(method, path, headers=ACME, body={"name": "x", "duration": "1h"})
        unknown = await api.call(method, "/api/v1/no-such-thing", headers=ACME)

    assert answer[0] == unknown[0] == 404
    assert answer[1] == {**unknown[1], "detail": f"no such path: {path!r}"}


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"duration": "1h"}, "name: Field required"),
        ({"name": "x"}, "give exactly one of ends_at or duration"),
        ({"name": "x", "duration": "1h", "ends_at": "2026-01-01T02:00:00Z"}, "exactly one"),
        ({"name": "x", "duration": "soon"}, "duration:"),
        ({"name": "x", "duration": "0s"}, "duration must be positive"),
        ({"name": "x", "ends_at": "2026-01-01T02:00:00"}, "ends_at:"),
        ({"name": "x", "ends_at": "2025-12-31T00:00:00Z"}, "must end in the future"),
        ({"name": "x", "duration": "31d"}, "at most 30 days"),
        ({"name": "x", "duration": "1h", "rules": ["bridge_down"]}, "rules"),
        ({"name": "x", "duration": "1h", "integrations": ["nope"]}, "integrations: unknown 'nope'"),
        ({"name": "x", "duration": "1h", "tenants": ["nobody"]}, "tenants: unknown 'nobody'"),
        ({"name": "x", "duration": "1h", "comment": "hi"}, "comment: Extra inputs"),
        (["x"], "the body must be a JSON object"),
    ],
)
async def test_bad_input_is_a_400_problem_naming_the_field(
    sim: SimulatorThread, body: Any, detail: str
) -> None:
    async with running_daemon(base_config(sim, [bridge(sim)])) as d, silence_api(d) as api:
        status, doc = await api.call("POST", "/api/v1/silences", body=body)
        listed = await api.call("GET", "/api/v1/silences")

    assert status == 400 and detail in doc["detail"], doc
    assert doc["status"] == 400 and doc["title"] == "Bad Request"
    assert listed[1]["count"] == 0


async def test_a_body_that_is_not_json_is_a_400(sim: SimulatorThread) -> None:
    async with running_daemon(base_config(sim, [bridge(sim)])) as d, silence_api(d) as api:
        async with api.session.post(
            api.url + "/api/v1/silences", headers=ADMIN, data=b"{not json"
        ) as r:
            status, doc = r.status, await r.json(content_type=None)

    assert status == 400 and doc["detail"] == "the body must be a JSON object"

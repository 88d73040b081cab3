"""Every list is paged like `GET /api/v1/integrations`: the incidents list and the silences
list take `limit` and `cursor`, and their filters, over real HTTP against the daemon.

Incidents are written through the store's own interface (`apply_alerts`, what the alert
engine calls), so each test states exactly which occurrences exist, open or resolved.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from healthd.api.pages import encode_cursor
from healthd.daemon import Daemon
from healthd.model import Incident
from healthd.sim.app import SimulatorThread
from tests.api.conftest import ACME, ACME_TOKEN, GLOBEX, assert_problem, call, fleet_config
from tests.conftest import ADMIN_TOKEN, running_daemon
from tests.registry.conftest import send

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("secrets_env")]

T0 = datetime(2026, 3, 1, tzinfo=UTC)


async def opened(d: Daemon, key: str, minutes: int, **details: Any) -> None:
    at = T0 + timedelta(minutes=minutes)
    incident = Incident(
        dedup_key=key, rule="integration_failing", summary=key, opened_at=at, details=details
    )
    await d.store.apply_alerts(opened=[incident], resolved=[], events=[], now=at)


async def resolved(d: Daemon, key: str, minutes: int) -> None:
    at = T0 + timedelta(minutes=minutes)
    await d.store.apply_alerts(opened=[], resolved=[(key, at)], events=[], now=at)


async def walk(
    url: str, path: str, token: str = ADMIN_TOKEN, cursor: str | None = None
) -> list[list[str]]:
    """Every page of a list from `cursor` on, following next_cursor to the end: each
    page's names."""
    pages: list[list[str]] = []
    while True:
        sep = "&" if "?" in path else "?"
        answer = await call(url, "GET", path + (f"{sep}cursor={cursor}" if cursor else ""), token)
        body = answer.json
        items = body.get("incidents", body.get("silences"))
        pages.append([i.get("dedup_key", i.get("name")) for i in items])
        assert body["count"] == len(items)
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 50, "the cursor does not move on"


async def three_open_four_resolved(d: Daemon) -> None:
    """Occurrences opened in the order of their names; b, d, e and g resolved since."""
    for n, key in enumerate("abcdefg"):
        tenant = ACME if key in "aceg" else GLOBEX
        await opened(d, key, n, tenant=tenant, integration=f"i-{key}", provider="twilio")
    for n, key in enumerate("bdeg"):
        await resolved(d, key, 10 + n)


# -- incidents ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "pages"),
    [
        (2, [["f", "c"], ["a", "g"], ["e", "d"], ["b"]]),
        # A page that ends the open ones exactly goes on to the resolved ones.
        (3, [["f", "c", "a"], ["g", "e", "d"], ["b"]]),
    ],
)
async def test_incident_pages_give_open_ones_first_then_resolved_each_newest_first_once(
    sim: SimulatorThread, limit: int, pages: list[list[str]]
) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        await three_open_four_resolved(d)
        walked = await walk(d.url, f"/api/v1/incidents?limit={limit}")

    assert walked == pages


async def test_an_incident_opened_between_pages_neither_repeats_nor_hides_the_others(
    sim: SimulatorThread,
) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        await three_open_four_resolved(d)
        first = (await call(d.url, "GET", "/api/v1/incidents?limit=2")).json
        await opened(d, "h", 30, tenant=ACME)
        rest = await walk(d.url, "/api/v1/incidents?limit=2", cursor=first["next_cursor"])

    assert [i["dedup_key"] for i in first["incidents"]] == ["f", "c"]
    assert rest == [["a", "g"], ["e", "d"], ["b"]]


async def test_a_tenant_tokens_pages_are_full_pages_of_its_own_incidents(
    sim: SimulatorThread,
) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        await three_open_four_resolved(d)
        pages = await walk(d.url, "/api/v1/incidents?limit=2", ACME_TOKEN)
        other = (await call(d.url, "GET", f"/api/v1/incidents?tenant={GLOBEX}", ACME_TOKEN)).json

    assert pages == [["c", "a"], ["g", "e"]]
    assert other == {"incidents": [], "count": 0, "next_cursor": None}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (f"tenant={GLOBEX}", ["f", "d", "b"]),
        ("open=false&limit=3", ["g", "e", "d", "b"]),
        ("open=true", ["f", "c", "a"]),
        ("integration=i-c", ["c"]),
        ("provider=twilio&open=false", ["g", "e", "d", "b"]),
        ("provider=sendgrid", []),
        ("rule=integration_failing&open=true", ["f", "c", "a"]),
        ("rule=provider_outage", []),
    ],
)
async def test_incident_filters_apply_across_pages(
    sim: SimulatorThread, query: str, expected: list[str]
) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        await three_open_four_resolved(d)
        pages = await walk(d.url, f"/api/v1/incidents?{query}")

    assert [key for page in pages for key in page] == expected


@pytest.mark.parametrize(
    "cursor",
    [
        "nonsense",
        encode_cursor("closed:3"),
        encode_cursor("open:x"),
        encode_cursor("open:" + "9" * 19),
    ],
)
async def test_an_incident_cursor_not_handed_out_is_a_400_problem(
    sim: SimulatorThread, cursor: str
) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        answer = await call(d.url, "GET", f"/api/v1/incidents?cursor={cursor}")

    assert "cursor" in assert_problem(answer, 400)["detail"]


@pytest.mark.parametrize("query", ["provider=pigeon", "rule=nope", "tenant=-x", "status=ok"])
async def test_a_bad_incident_filter_is_a_400_problem_naming_it(
    sim: SimulatorThread, query: str
) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        answer = await call(d.url, "GET", f"/api/v1/incidents?{query}")

    assert query.partition("=")[0] in assert_problem(answer, 400)["detail"]


# -- silences -------------------------------------------------------------------------------


async def silence(url: str, name: str, **selectors: list[str]) -> None:
    body = {"name": name, "duration": "1h", **selectors}
    answer = await send(url, "POST", "/api/v1/silences", body)
    assert answer.status == 201, answer.json


async def test_silence_pages_go_in_name_order_each_once(sim: SimulatorThread) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        for name in ("upgrade", "dc-move", "acme-migration", "bridge-patch", "weekend"):
            await silence(d.url, name)
        pages = await walk(d.url, "/api/v1/silences?limit=2")

    assert pages == [["acme-migration", "bridge-patch"], ["dc-move", "upgrade"], ["weekend"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (f"tenant={ACME}", ["acme-only", "all", "one-bridge"]),
        (f"tenant={GLOBEX}", ["all", "globex-bridges", "one-bridge"]),
        ("provider=twilio", ["acme-only", "all", "one-bridge"]),
        ("provider=imessage_bridge", ["acme-only", "all", "globex-bridges", "one-bridge"]),
        ("integration=bridge-acme2", ["acme-only", "all", "globex-bridges"]),
        (f"integration=bridge-acme1&tenant={GLOBEX}", ["all", "globex-bridges", "one-bridge"]),
    ],
)
async def test_silence_filters_keep_those_whose_selector_takes_the_value(
    sim: SimulatorThread, query: str, expected: list[str]
) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        await silence(d.url, "all")
        await silence(d.url, "acme-only", tenants=[ACME])
        await silence(d.url, "globex-bridges", tenants=[GLOBEX], providers=["imessage_bridge"])
        await silence(d.url, "one-bridge", integrations=["bridge-acme1"])
        pages = await walk(d.url, f"/api/v1/silences?{query}&limit=1")

    assert sorted(name for page in pages for name in page) == expected


@pytest.mark.parametrize(
    "query", ["cursor=nonsense", "limit=0", "limit=1001", "provider=pigeon", "tenant=-x", "x=1"]
)
async def test_a_bad_silence_list_query_is_a_400_problem(sim: SimulatorThread, query: str) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        answer = await call(d.url, "GET", f"/api/v1/silences?{query}")

    assert_problem(answer, 400)

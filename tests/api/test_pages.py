"""Cursor pagination of `GET /api/v1/integrations`: id order, each integration once, filters
applied before the page is cut, stable when the fleet changes between pages."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from healthd.api.pages import CHUNK, decode_cursor, page
from healthd.daemon import Daemon
from healthd.sim.app import SimulatorThread
from tests.api.conftest import FLEET, assert_problem, call, fleet_config
from tests.conftest import running_daemon
from tests.registry.conftest import REGISTRY_KEY, REGISTRY_TOKEN, body, registry_config, send

pytestmark = pytest.mark.usefixtures("secrets_env")


async def pages(d: Daemon, query: str) -> list[list[str]]:
    out: list[list[str]] = []
    cursor = ""
    while True:
        answer = (await call(d.url, "GET", f"/api/v1/integrations?{query}{cursor}")).json
        out.append([i["id"] for i in answer["integrations"]])
        if answer["next_cursor"] is None:
            return out
        cursor = f"&cursor={answer['next_cursor']}"


async def test_pages_hold_every_integration_once_in_id_order(sim: SimulatorThread) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        got = await pages(d, "limit=3")

    assert got == [sorted(FLEET)[:3], sorted(FLEET)[3:]]


async def test_filters_apply_before_the_page_is_cut(sim: SimulatorThread) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        got = await pages(d, "tenant=acme&limit=1")

    assert got == [["bridge-acme1"], ["bridge-acme2"]]


async def test_an_integration_added_between_pages_neither_repeats_nor_hides_another(
    sim: SimulatorThread, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEALTHD_TEST_REGISTRY_KEY", REGISTRY_KEY)
    monkeypatch.setenv("HEALTHD_TEST_REGISTRY_TOKEN", REGISTRY_TOKEN)
    async with running_daemon(registry_config(sim, tmp_path / "h.db")) as d:
        first = (await call(d.url, "GET", "/api/v1/integrations?limit=2")).json
        await send(d.url, "PUT", "/api/v1/integrations/a-first", body(sim, "x"))
        rest = await call(
            d.url, "GET", f"/api/v1/integrations?limit=10&cursor={first['next_cursor']}"
        )

    seen = [i["id"] for i in first["integrations"] + rest.json["integrations"]]
    assert seen == sorted(FLEET)  # the new one sorts before the cursor: next time, page one


@pytest.mark.parametrize("query", ["cursor=bm9wZQ", "cursor=%%%", "limit=0", "limit=1001"])
async def test_a_bad_cursor_or_limit_is_a_400_naming_it(sim: SimulatorThread, query: str) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        answer = await call(d.url, "GET", f"/api/v1/integrations?{query}")

    assert query.split("=")[0] in assert_problem(answer, 400)["detail"]


IDS = [f"i{n:05d}" for n in range(3 * CHUNK + 500)]


def walk(select: Callable[[Sequence[str]], Sequence[str]], limit: int) -> list[list[str]]:
    """Every page of `IDS` through `page` with `select`, following each cursor."""
    out: list[list[str]] = []
    after = None
    while True:
        got, cursor = page(IDS, lambda iid: iid, after=after, limit=limit, select=select)
        out.append(got)
        if cursor is None:
            return out
        after = decode_cursor(cursor)


def test_a_filter_few_pass_pages_across_runs_of_ids_each_once_in_order() -> None:
    rare = IDS[:: CHUNK - 300]  # a few in each run of CHUNK ids
    got = walk(lambda run: [i for i in run if i in rare], limit=2)

    assert got == [rare[n : n + 2] for n in range(0, len(rare), 2)]


def test_a_filter_most_pass_cuts_the_page_at_its_limit_with_a_cursor_after_the_last() -> None:
    first, cursor = page(IDS, lambda iid: iid, after=None, limit=5, select=lambda run: run[1:])

    assert first == IDS[1:6]
    assert cursor is not None and decode_cursor(cursor) == IDS[5]

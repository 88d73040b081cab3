"""`request_json` sends what the probe asked for and keeps what the answer said.

A small echo server on loopback says what arrived: the path and every query value, decoded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from probes._http import Answer, request_json
from tests.email_support import make_ctx, serve

# Every character a generated password may hold that a query must escape.
AWKWARD = "p a+s/s&w=o%r?d#é;:@"


async def echo(request: web.Request) -> web.Response:
    return web.json_response(
        {"path": request.path, "query": list(request.query.items())},
        headers={"x-ratelimit-remaining": "7"},
    )


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with serve(routes=[web.get("/{tail:.*}", echo)]) as base:
        yield base


async def get(url: str, params: dict[str, str] | None = None) -> Answer:
    async with aiohttp.ClientSession() as session:
        return await request_json(make_ctx(session), "GET", url, params=params)


async def test_a_query_value_with_reserved_characters_arrives_as_it_was(url: str) -> None:
    answer = await get(f"{url}/api/v1/server/info", {"password": AWKWARD})
    assert answer.data == {"path": "/api/v1/server/info", "query": [["password", AWKWARD]]}


async def test_parameters_are_added_to_a_query_the_url_already_has(url: str) -> None:
    answer = await get(f"{url}/v3/stats?aggregated_by=day", {"start_date": "2026-12-01"})
    assert answer.data["query"] == [["aggregated_by", "day"], ["start_date", "2026-12-01"]]


async def test_a_url_that_needs_quoting_is_quoted_before_it_is_sent(url: str) -> None:
    answer = await get(f"{url}/bridges/mac mini/é", {"password": AWKWARD})
    assert answer.data == {"path": "/bridges/mac mini/é", "query": [["password", AWKWARD]]}


async def test_answer_headers_are_read_whatever_their_case(url: str) -> None:
    # HTTP/2 proxies lower-case every header name; SendGrid's budget reads X-RateLimit-*.
    answer = await get(f"{url}/v3/user/credits")
    assert answer.headers["X-RateLimit-Remaining"] == "7"

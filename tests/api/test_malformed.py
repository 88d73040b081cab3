"""Malformed requests over real HTTP: a 4xx problem document each, never a 500 or plain text.

Raw sockets, as a proper client would not send these: a bearer token that is not UTF-8,
silence bodies that are not what the schema says, and requests aiohttp's own parser
refuses (bad request line, bad header, oversize header), which are the caller's mistake and
logged at info at most, without a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from structlog.testing import capture_logs

from healthd.daemon import Daemon
from healthd.sim.app import SimulatorThread
from tests.api.rawhttp import assert_problem, exchange, request
from tests.conftest import ADMIN_TOKEN, base_config, bridge, running_daemon

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("secrets_env")]

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}".encode()}
JSON = {**ADMIN, "Content-Type": b"application/json"}


@pytest.fixture
async def daemon(sim: SimulatorThread) -> AsyncIterator[Daemon]:
    async with running_daemon(base_config(sim, [bridge(sim)])) as d:
        yield d


@pytest.mark.parametrize("path", ["/api/v1/me", "/api/v1/integrations", "/api/v1/silences"])
async def test_a_bearer_token_that_is_not_utf8_is_a_401(daemon: Daemon, path: str) -> None:
    data = request("GET", path, {"Authorization": b"Bearer \xff\xfe-not-utf8"})

    doc = assert_problem(await exchange(daemon.url, data), 401)

    assert "bearer token" in doc["detail"]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"name": "x", "duration": 99999999999999999999}', "duration"),
        (b'{"name": "x", "duration": 1e400}', "duration"),
        (b'{"name": "x", "duration": Infinity}', "duration"),
        (b'{"name": "x", "duration": "999999999999d"}', "duration"),
        (b'{"name": "x", "starts_at": "9999-12-31T23:00:00+00:00", "duration": "2h"}', ""),
        (b'{"a": ' * 3000 + b"1" + b"}" * 3000, "JSON object"),
    ],
    ids=["huge-int", "huge-float", "infinity", "huge-days", "start-at-year-9999", "deep"],
)
async def test_a_malformed_silence_is_a_400_problem(
    daemon: Daemon, body: bytes, detail: str
) -> None:
    answer = await exchange(daemon.url, request("POST", "/api/v1/silences", JSON, body))

    doc = assert_problem(answer, 400)
    assert detail in doc["detail"]


async def test_a_silence_body_past_the_size_limit_is_a_413(daemon: Daemon) -> None:
    body = b'{"name": "' + b"x" * 100_000 + b'", "duration": "1h"}'

    answer = await exchange(daemon.url, request("POST", "/api/v1/silences", JSON, body))

    assert_problem(answer, 413)


@pytest.mark.parametrize(
    "charset", [b"application/json; charset=no-such-charset", b"application/json; charset=utf-16"]
)
async def test_a_silence_body_is_read_as_utf8_whatever_the_charset_says(
    daemon: Daemon, charset: bytes
) -> None:
    headers = {**ADMIN, "Content-Type": charset}
    body = b'{"name": "x", "duration": "1h"}'

    answer = await exchange(daemon.url, request("POST", "/api/v1/silences", headers, body))

    assert answer.status == 201, answer


async def test_a_silence_body_that_is_not_utf8_is_a_400(daemon: Daemon) -> None:
    body = b'{"name": "\xff\xfe", "duration": "1h"}'

    answer = await exchange(daemon.url, request("POST", "/api/v1/silences", JSON, body))

    assert_problem(answer, 400)


@pytest.mark.parametrize(
    "data",
    [
        b"NOT-A-METHOD / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nA header without a colon\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10_000 + b"\r\n\r\n",
        b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/9.9.9\r\nHost: x\r\n\r\n",
    ],
    ids=["bad-method", "bad-header", "oversize-header", "oversize-line", "bad-version"],
)
async def test_a_request_the_parser_refuses_is_a_400_problem_logged_without_traceback(
    daemon: Daemon, data: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with capture_logs() as logs:
        doc = assert_problem(await exchange(daemon.url, data), 400)

    assert "aaaa" not in doc["detail"]  # what the caller sent is not repeated back
    assert [e["log_level"] for e in logs if e["event"] == "http_request_rejected"] == ["info"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]

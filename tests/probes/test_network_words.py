"""A network failure is said in plain words in the finding, never as an exception's name."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
import yarl
from multidict import CIMultiDict, CIMultiDictProxy

from healthd.catalog import load as load_catalog
from healthd.clock import FakeClock
from healthd.interfaces import ProbeContext
from probes._http import (
    NETWORK_FALLBACK,
    NETWORK_WORDS,
    TransportFailure,
    network_words,
    request_json,
)

_URL = yarl.URL("http://127.0.0.1/")
_INFO = aiohttp.RequestInfo(_URL, "GET", CIMultiDictProxy(CIMultiDict()), _URL)


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (aiohttp.ServerDisconnectedError(), "the connection was dropped before an answer came"),
        (aiohttp.ClientPayloadError("truncated"), "the answer was cut off part-way"),
        (asyncio.IncompleteReadError(b"", 10), "the answer was cut off part-way"),
        (
            aiohttp.ServerFingerprintMismatch(b"a", b"b", "bridge", 443),
            "the server's certificate is not the one expected",
        ),
        (aiohttp.ClientResponseError(_INFO, ()), "the answer was not valid HTTP"),
        (aiohttp.InvalidURL("x"), "the address is not a valid URL"),
        (aiohttp.ClientConnectionResetError(), "the connection was reset"),
        (ConnectionResetError(), "the connection was reset"),
        (ConnectionRefusedError(), "the connection was refused"),
        (aiohttp.ClientOSError(), "the connection failed"),
        (BrokenPipeError(), "the connection failed"),
        (aiohttp.ClientError(), NETWORK_FALLBACK),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else "",
)
def test_each_network_failure_is_said_in_plain_words(exc: BaseException, words: str) -> None:
    said = network_words(exc)
    assert said == words
    assert type(exc).__name__ not in said


def test_no_row_says_a_class_name() -> None:
    for kind, words in NETWORK_WORDS:
        assert kind.__name__ not in words and "Error" not in words


@pytest.fixture
async def hang_up_server() -> AsyncIterator[str]:
    """A loopback server that reads the request and closes without a word."""

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}/api/v1/server/info"


async def test_a_server_that_hangs_up_is_the_connection_dropped(hang_up_server: str) -> None:
    async with aiohttp.ClientSession() as session:
        ctx = ProbeContext(session=session, clock=FakeClock(), catalog=load_catalog(), timeout=5)
        with pytest.raises(TransportFailure) as failure:
            await request_json(ctx, "GET", hang_up_server)
    assert failure.value.kind == "connect"
    assert failure.value.detail == "the connection was dropped before an answer came"

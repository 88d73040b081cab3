"""Slow clients against the real daemon: each request is read within `api.read_timeout`,
at most `api.max_connections` are open at once, and /healthz answers throughout.

The timeout is a second, from the config; every wait is bounded. A client that trickles
its headers a byte at a time is cut off exactly like one that sends nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import yaml

from healthd import config as config_module
from healthd.api import listener
from healthd.daemon import Daemon
from healthd.errors import ConfigError
from healthd.sim.app import SimulatorThread
from tests.api.rawhttp import address, exchange, request
from tests.conftest import base_config, bridge, running_daemon

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("secrets_env")]

READ_TIMEOUT = "1s"
BOUND = 15.0  # seconds any one wait below may take, far above the read timeout


def config(sim: SimulatorThread, **api: Any) -> dict[str, Any]:
    return base_config(sim, [bridge(sim)], api={"read_timeout": READ_TIMEOUT, **api})


class SlowClient:
    """A connection that sends `head` a byte at a time, never finishing the request."""

    def __init__(self, url: str, head: bytes) -> None:
        self._url, self._head = url, head
        self.closed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SlowClient:
        reader, writer = await asyncio.open_connection(*address(self._url))
        self._task = asyncio.create_task(self._trickle(reader, writer))
        return self

    async def _trickle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        watch = asyncio.create_task(reader.read())  # b"" once the daemon closes
        try:
            for byte in self._head:
                writer.write(bytes([byte]))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(watch), 0.05)
                if watch.done():
                    break
            await watch
        except ConnectionError:
            pass
        finally:
            watch.cancel()
            writer.close()
            self.closed.set()

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


TRICKLED = b"GET /healthz HTTP/1.1\r\nHost: healthd\r\n" + b"X-Slow: " + b"a" * 10_000


@contextlib.asynccontextmanager
async def slow_clients(url: str, count: int) -> AsyncIterator[list[SlowClient]]:
    heads = [TRICKLED if i % 2 else b"" for i in range(count)]  # half send nothing at all
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(SlowClient(url, h)) for h in heads]


async def healthz(url: str) -> int:
    return (await exchange(url, request("GET", "/healthz"))).status


async def all_closed(daemon: Daemon) -> None:
    """The daemon's side has closed every client connection (bounded)."""
    async with asyncio.timeout(BOUND):
        while daemon.listener.open:
            await asyncio.sleep(0.01)


@pytest.fixture
async def daemon(sim: SimulatorThread) -> AsyncIterator[Daemon]:
    async with running_daemon(config(sim)) as d:
        yield d


async def test_healthz_answers_while_slow_clients_hold_connections(daemon: Daemon) -> None:
    async with slow_clients(daemon.url, 40):
        assert await healthz(daemon.url) == 200


async def test_slow_clients_are_closed_after_the_read_timeout(daemon: Daemon) -> None:
    async with slow_clients(daemon.url, 40) as clients, asyncio.timeout(BOUND):
        await asyncio.gather(*(c.closed.wait() for c in clients))

    await all_closed(daemon)


async def test_a_body_that_never_finishes_is_cut_off_after_the_read_timeout(
    daemon: Daemon,
) -> None:
    head = request("POST", "/api/v1/silences", {"Content-Length": b"1000"})
    async with asyncio.timeout(BOUND):
        reader, writer = await asyncio.open_connection(*address(daemon.url))
        writer.write(head + b'{"name": ')  # 991 bytes short, for ever
        rest = await reader.read()
        writer.close()

    assert rest == b""  # closed, without an answer: there is no one left to read it
    await all_closed(daemon)


async def test_a_keep_alive_connection_idle_past_the_read_timeout_is_closed(
    daemon: Daemon,
) -> None:
    async with asyncio.timeout(BOUND):
        reader, writer = await asyncio.open_connection(*address(daemon.url))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: healthd\r\n\r\n")
        first = await reader.readuntil(b'{"status":"ok"}')
        rest = await reader.read()  # nothing more is asked: the daemon closes
        writer.close()

    assert first.startswith(b"HTTP/1.1 200")
    assert rest == b""


async def test_no_more_than_max_connections_are_open_and_the_rest_wait(
    sim: SimulatorThread,
) -> None:
    async with running_daemon(config(sim, max_connections=4)) as d:
        most = 0
        async with slow_clients(d.url, 10) as clients, asyncio.timeout(BOUND):
            while not all(c.closed.is_set() for c in clients):
                most = max(most, d.listener.open)
                await asyncio.sleep(0.01)
            assert await healthz(d.url) == 200

    assert most == 4


@pytest.mark.parametrize(
    ("soft", "configured", "expected"),
    [(256, None, 256 - 5 - 64), (1024, None, 1024 - 5 - 64), (60, None, 16), (256, 50, 50)],
)
def test_max_connections_leaves_the_probes_their_sockets_under_the_file_limit(
    monkeypatch: pytest.MonkeyPatch, soft: int, configured: int | None, expected: int
) -> None:
    monkeypatch.setattr(listener.resource, "getrlimit", lambda _: (soft, soft))

    assert listener.connection_limit(configured, probe_sockets=5) == expected


def test_a_read_timeout_of_zero_is_refused_naming_the_key(sim: SimulatorThread) -> None:
    with pytest.raises(ConfigError, match=r"api\.read_timeout"):
        config_module.loads(yaml.safe_dump(config(sim, read_timeout="0s")))

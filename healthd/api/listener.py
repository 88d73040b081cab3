"""The listening socket: at most `max_connections` clients, each given `read_timeout` to ask.

aiohttp's server bounds neither: a connection may take an hour to send its headers, and
every accepted connection holds a file descriptor. A few hundred slow clients then use up
the process's file limit, and the probes, which need a descriptor per connection they open,
fail as if the provider were down. So the listener here

- accepts a connection only while fewer than `max_connections` are open; above that, new
  clients wait in the kernel's backlog (no descriptor of ours) until a slot frees, rather
  than being refused: a liveness probe is answered late, as slow clients are cut off
  (each holds a slot at most `read_timeout` per request), not failed;
- gives every request `read_timeout` from the moment the connection opens, or the previous
  answer is ready, until its headers and body are in (`Connection.expect_request` and
  `request_read`, called by the API's `_deadline` middleware); a connection still sending
  then is closed. An idle keep-alive connection is closed the same way;
- answers aiohttp's own parser rejections (bad request line, bad header, oversize header)
  with a problem document, logged at info without a traceback: they are the caller's
  mistake, not healthd's.

The default `max_connections` leaves, under the soft RLIMIT_NOFILE, a socket for every
request the probes may have in flight at once and `RESERVED_FILES` more for the store,
the logs and the notifiers (`connection_limit`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import resource
import socket
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, HttpProcessingError, LineTooLong

from healthd.api.problems import problem

log = structlog.get_logger("healthd.api")

# Descriptors kept for what is neither a probe nor a client: the store, the log, the
# listening socket, the notifiers, the PagerDuty SDK's thread.
RESERVED_FILES = 64
# Below this many client connections the API is of little use; a file limit that low is
# logged at start as a misconfiguration.
MIN_CONNECTIONS = 16
# The largest limit assumed when RLIMIT_NOFILE says "infinite".
UNLIMITED_FILES = 1 << 20
# How long to wait before accepting again when accept() itself finds no free descriptor.
ACCEPT_RETRY_SECONDS = 0.1
OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
BACKLOG = 128


def connection_limit(configured: int | None, probe_sockets: int) -> int:
    """`api.max_connections`, or what the file limit leaves after the probes and the reserve."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    files = UNLIMITED_FILES if soft == resource.RLIM_INFINITY else soft
    spare = files - probe_sockets - RESERVED_FILES
    if configured is not None:
        if configured > spare:
            log.warning(
                "api_connections_over_file_limit",
                max_connections=configured,
                file_limit=files,
                probe_sockets=probe_sockets,
                message="api.max_connections leaves too few files for the probes",
            )
        return configured
    if spare < MIN_CONNECTIONS:
        log.warning(
            "file_limit_low",
            file_limit=files,
            probe_sockets=probe_sockets,
            message=f"raise the file limit (LimitNOFILE); allowing {MIN_CONNECTIONS} clients",
        )
        return MIN_CONNECTIONS
    return spare


class Connection(web.RequestHandler):
    """aiohttp's connection handler with a deadline for reading each request."""

    def __init__(
        self,
        manager: web.Server,
        *,
        loop: asyncio.AbstractEventLoop,
        read_timeout: float,
        closed: Callable[[], None],
    ) -> None:
        # No access log (None, as the daemon's AppRunner says; aiohttp's stub wants a Logger).
        super().__init__(manager, loop=loop, access_log=None)  # type: ignore[arg-type]
        self._read_timeout = read_timeout
        self._closed = closed
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.expect_request()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.request_read()
        self._closed()
        super().connection_lost(exc)

    def expect_request(self) -> None:
        """A request is due now: it must be in (headers and body) within `read_timeout`."""
        self.request_read()
        self._deadline = self._loop.call_later(self._read_timeout, self._too_slow)

    def request_read(self) -> None:
        """The request is in; the time its handler takes is not the client's to bound."""
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        log.debug("client_too_slow", read_timeout=self._read_timeout)
        self.force_close()

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's own error answers (a request it could not parse) as problem documents."""
        if status >= 500:
            log.error("api_error", error_type=type(exc).__name__ if exc else None)
            detail = "internal error; see healthd's log"
        else:
            log.info("http_request_rejected", status=status, error_type=type(exc).__name__)
            detail = _rejection(exc)
        if request.writer.output_size > 0:
            raise ConnectionError("an answer was under way; the connection is dropped")
        response = problem(status, detail)
        response.force_close()
        return response


def _rejection(exc: BaseException | None) -> str:
    """Why aiohttp's parser refused the request, without repeating what the caller sent."""
    if isinstance(exc, LineTooLong):
        return "the request line or a header is too long"
    if isinstance(exc, BadHttpMethod):
        return "not an HTTP request (unknown method)"
    if isinstance(exc, HttpProcessingError):
        return "malformed HTTP request (request line or headers)"
    return "malformed HTTP request"


class Listener:
    """The listening socket and its accept loop, for an aiohttp `AppRunner` already set up."""

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        *,
        max_connections: int,
        read_timeout: float,
    ) -> None:
        assert runner.server is not None, "set the runner up first"
        self._server = runner.server
        self._host, self._port = host, port
        self.max_connections = max_connections
        self._read_timeout = read_timeout
        self._slots = asyncio.Semaphore(max_connections)
        self.open = 0  # client connections accepted and not yet closed
        self._sock: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        assert self._sock is not None
        return int(self._sock.getsockname()[1])

    async def start(self) -> None:
        """Bind (an address in use raises OSError, as aiohttp's site did) and accept."""
        loop = asyncio.get_running_loop()
        family, *_ = (await loop.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM))[0]
        sock = socket.create_server(
            (self._host, self._port), family=family, backlog=BACKLOG, reuse_port=False
        )
        sock.setblocking(False)
        self._sock = sock
        self._task = asyncio.create_task(self._accept(sock), name="api-accept")
        log.info(
            "api_listening",
            max_connections=self.max_connections,
            read_timeout=self._read_timeout,
        )

    async def close(self) -> None:
        """Stop accepting; the runner's cleanup closes the connections that are open."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sock is not None:
            self._sock.close()

    async def _accept(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._slots.acquire()  # full: clients wait in the backlog, not refused
            try:
                client, _ = await loop.sock_accept(sock)
            except OSError as exc:
                self._slots.release()
                if exc.errno in OUT_OF_RESOURCES:  # another part of healthd holds them
                    log.warning("api_accept_out_of_files", error=errno.errorcode[exc.errno])
                    await asyncio.sleep(ACCEPT_RETRY_SECONDS)
                else:  # the client went away before it was accepted (ECONNABORTED ...)
                    log.debug("api_accept_failed", error=errno.errorcode.get(exc.errno or 0))
                continue
            self.open += 1
            try:
                await loop.connect_accepted_socket(self._connection, client)
            except OSError:
                client.close()  # `Connection.connection_lost` never runs: free its slot
                self._closed()

    def _closed(self) -> None:
        self.open -= 1
        self._slots.release()

    def _connection(self) -> Connection:
        return Connection(
            self._server,
            loop=asyncio.get_running_loop(),
            read_timeout=self._read_timeout,
            closed=self._closed,
        )

"""The simulator server: every registered provider simulator on one aiohttp app.

Provider simulators are discovered through the `healthd.simulators` entry-point group (one
line in pyproject per simulator), so adding a provider never touches this module. The one
app is served on two loopback listeners: plain HTTP, and HTTPS with a throwaway CA (for
clients that insist on `https://`, such as the `pagerduty` package). The control API
(`control.py`) lives under `/_sim` on the same app.

Every simulator speaks the provider's real paths, so two simulators could claim the same
path; aiohttp would then route silently to whichever registered first. `build_app` refuses
that instead: overlapping routes across simulators, or a simulator route under `/_sim`,
raise `RouteConflict` before anything listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
import threading
from collections.abc import Iterable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import hdrs, web

from healthd.sim import control
from healthd.sim.base import ProviderSim
from healthd.sim.client import SimClient
from healthd.sim.tls import make_tls

ENTRY_POINT_GROUP = "healthd.simulators"

# Handlers of `hanging` scenarios are cancelled at shutdown after this long (seconds).
SHUTDOWN_GRACE = 0.5


class SimulatorSetupError(ValueError):
    """The set of simulators cannot be served together (bad plug-in, duplicate name)."""


class RouteConflict(SimulatorSetupError):
    """Two simulators (or a simulator and the control API) claim the same request."""


def load_simulators() -> list[ProviderSim]:
    """One fresh instance of every simulator registered under `healthd.simulators`."""
    sims: list[ProviderSim] = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        cls = ep.load()
        if not (isinstance(cls, type) and issubclass(cls, ProviderSim)):
            raise SimulatorSetupError(f"entry point {ep.name!r} ({ep.value}) is not a ProviderSim")
        if cls.name != ep.name:
            raise SimulatorSetupError(
                f"entry point {ep.name!r} loads a simulator named {cls.name!r}; they must match"
            )
        sims.append(cls())
    return sims


def _segments(path: str) -> list[str]:
    return path.strip("/").split("/")


def _is_variable(segment: str) -> bool:
    return "{" in segment


def _spans_segments(segment: str) -> bool:
    """`{tail:.*}`-style variables can match several path segments."""
    return _is_variable(segment) and ":" in segment and ("." in segment or "/" in segment)


def paths_overlap(a: str, b: str) -> bool:
    """Whether some request path could match both aiohttp path patterns.

    Conservative: a variable segment is taken to match any segment, and a variable with a
    custom regex that may contain `/` is taken to match the rest of the path.
    """
    sa, sb = _segments(a), _segments(b)
    for i in range(max(len(sa), len(sb))):
        if i >= len(sa) or i >= len(sb):
            return False
        x, y = sa[i], sb[i]
        if _spans_segments(x) or _spans_segments(y):
            return True
        if x != y and not (_is_variable(x) or _is_variable(y)):
            return False
    return True


def _methods_overlap(a: str, b: str) -> bool:
    return a == b or hdrs.METH_ANY in (a, b)


def _route_defs(sim: ProviderSim) -> list[web.RouteDef]:
    defs = sim.routes()
    for d in defs:
        if not isinstance(d, web.RouteDef):
            raise SimulatorSetupError(f"simulator {sim.name!r} returned {d!r}; only routes allowed")
    return defs


def check_routes(sims: Sequence[ProviderSim]) -> None:
    """Raise `RouteConflict` if two simulators, or a simulator and `/_sim`, overlap."""
    claimed: list[tuple[str, web.RouteDef]] = []
    for sim in sims:
        for d in _route_defs(sim):
            if _segments(d.path)[0] == _segments(control.PREFIX)[0]:
                raise RouteConflict(
                    f"simulator {sim.name!r} route {d.method} {d.path} is under the control "
                    f"prefix {control.PREFIX}"
                )
            for owner, other in claimed:
                if owner != sim.name and _methods_overlap(d.method, other.method):
                    if paths_overlap(d.path, other.path):
                        raise RouteConflict(
                            f"simulators {owner!r} and {sim.name!r} both route "
                            f"{other.method} {other.path} / {d.method} {d.path}"
                        )
        claimed.extend((sim.name, d) for d in _route_defs(sim))


def build_app(sims: Sequence[ProviderSim]) -> web.Application:
    """The one app: the control API plus every simulator's routes, checked for conflicts."""
    names = [s.name for s in sims]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SimulatorSetupError(f"simulator names used twice: {', '.join(duplicates)}")
    check_routes(sims)
    app = web.Application()
    app[control.SIMS] = {s.name: s for s in sims}
    app.add_routes(control.routes())
    for sim in sims:
        app.add_routes(sim.routes())
    return app


def _listen(host: str, port: int) -> socket.socket:
    return socket.create_server((host, port))


class Simulator:
    """Serve the simulators on loopback: `async with Simulator() as sim: ... sim.http_url`.

    `sims=None` loads every registered simulator. Ports default to ephemeral ones. The CA
    file at `ca_path` exists only while the simulator runs.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        http_port: int = 0,
        https_port: int = 0,
        sims: Iterable[ProviderSim] | None = None,
    ) -> None:
        self.host = host
        self._ports = (http_port, https_port)
        self._sims = list(sims) if sims is not None else load_simulators()
        self.app = build_app(self._sims)
        self._stack = contextlib.AsyncExitStack()
        self.http_url = ""
        self.https_url = ""
        self.ca_path = Path()

    def provider(self, name: str) -> ProviderSim:
        sims: dict[str, ProviderSim] = self.app[control.SIMS]
        try:
            return sims[name]
        except KeyError:
            raise KeyError(f"no simulator {name!r}; loaded: {', '.join(sorted(sims))}") from None

    @property
    def providers(self) -> list[str]:
        sims: dict[str, ProviderSim] = self.app[control.SIMS]
        return sorted(sims)

    async def __aenter__(self) -> Simulator:
        async with contextlib.AsyncExitStack() as stack:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="healthd-sim-"))
            tls = make_tls(Path(tmp))
            # Closed after the runner stops (the exit stack unwinds in reverse).
            http_sock = _listen(self.host, self._ports[0])
            stack.callback(http_sock.close)
            https_sock = _listen(self.host, self._ports[1])
            stack.callback(https_sock.close)
            runner = web.AppRunner(
                self.app,
                access_log=None,
                handler_cancellation=True,
                shutdown_timeout=SHUTDOWN_GRACE,
            )
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            for sock, ssl_context in ((http_sock, None), (https_sock, tls.server_context)):
                await web.SockSite(runner, sock, ssl_context=ssl_context).start()
            self.http_url = f"http://{self.host}:{http_sock.getsockname()[1]}"
            self.https_url = f"https://{self.host}:{https_sock.getsockname()[1]}"
            self.ca_path = tls.ca_path
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()


class SimulatorThread:
    """Run a `Simulator` in a background thread with its own event loop (sync callers).

    `with SimulatorThread() as sim:` gives `http_url`, `https_url`, `ca_path` and
    `client()`. Drive scenarios through the control API (`client()`), not by touching the
    simulator objects: they belong to the other thread's loop. Start and stop are bounded.
    """

    def __init__(
        self, *, start_timeout: float = 10.0, stop_timeout: float = 10.0, **kwargs: Any
    ) -> None:
        self._kwargs = kwargs
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._sim: Simulator | None = None

    @property
    def simulator(self) -> Simulator:
        if self._sim is None:
            raise RuntimeError("the simulator thread is not running")
        return self._sim

    @property
    def http_url(self) -> str:
        return self.simulator.http_url

    @property
    def https_url(self) -> str:
        return self.simulator.https_url

    @property
    def ca_path(self) -> Path:
        return self.simulator.ca_path

    def client(self, timeout: float = 5.0) -> SimClient:
        return SimClient(self.http_url, timeout=timeout)

    async def _main(self) -> None:
        try:
            async with Simulator(**self._kwargs) as sim:
                self._loop = asyncio.get_running_loop()
                self._stop = asyncio.Event()
                self._sim = sim
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()

    def __enter__(self) -> SimulatorThread:
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._main(),), name="healthd-sim", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(self._start_timeout):
            raise TimeoutError(f"simulator did not start within {self._start_timeout}s")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(self._stop_timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"simulator did not stop within {self._stop_timeout}s")
        self._sim = None

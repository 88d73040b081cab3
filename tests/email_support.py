"""Shared by the email probe, simulator and catalogue tests: a loopback server for the
simulators, integrations with real `Secret` credentials, and the probe context.

The tests serve the simulators' routes from a plain `aiohttp.web.Application` on
127.0.0.1, port 0, so one test can add a misbehaving route beside a simulator's.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web

from healthd.catalog import Catalog, load
from healthd.clock import FakeClock
from healthd.interfaces import ProbeContext
from healthd.model import Integration, ProbeResult, Thresholds
from healthd.secrets import Secret
from healthd.sim.base import ProviderSim

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@functools.cache
def shared_catalog() -> Catalog:
    """The shipped catalogue (every provider's file), loaded once for all tests."""
    return load()


@contextlib.asynccontextmanager
async def serve(*sims: ProviderSim, routes: Sequence[web.RouteDef] = ()) -> AsyncIterator[str]:
    """Serve the sims' routes (and `routes`) on 127.0.0.1; yield the base URL.

    Handlers still hanging at the end are cancelled, so `hanging` scenarios close fast.
    """
    app = web.Application()
    for sim in sims:
        app.add_routes(sim.routes())
    app.add_routes(routes)
    # No access log: it is the fake provider's log, and would print tokeninfo's query.
    runner = web.AppRunner(app, shutdown_timeout=0.1, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None and server.sockets
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def make_ctx(
    session: aiohttp.ClientSession, *, timeout: float = 5.0, clock: FakeClock | None = None
) -> ProbeContext:
    return ProbeContext(
        session=session,
        clock=clock or FakeClock(NOW),
        catalog=shared_catalog(),
        timeout=timeout,
    )


def make_integration(
    provider: str, base_url: str, credentials: dict[str, str], options: Any
) -> Integration:
    return Integration(
        id=f"{provider}-acme",
        provider=provider,
        tenant="acme",
        base_url=base_url,
        page=False,
        interval=timedelta(minutes=5),
        timeout=timedelta(seconds=5),
        thresholds=Thresholds(),
        credentials={name: Secret(value) for name, value in credentials.items()},
        options=options,
    )


def by_code(result: ProbeResult, code: str) -> Any:
    """The one finding with `code`; fails with the codes seen when there is none."""
    found = [f for f in result.findings if f.code == code]
    assert found, f"no {code} finding; got {[f.code for f in result.findings]}"
    return found[0]


def leaks(result: ProbeResult, caplog_text: str, secrets: list[str]) -> list[str]:
    """Planted secrets that show up in a result's findings or in the captured log."""
    shown = repr(result.to_dict()) + caplog_text
    return [s for s in secrets if s in shown]

"""The one aiohttp client session that every probe shares.

One pool for all probes: measured on this machine, aiohttp's pooled client costs a
fraction of httpx's CPU per probe at healthd's concurrency (DESIGN.md). A probe may have
several requests in flight at once (Twilio's checks run side by side, up to five), so the
connector allows `REQUESTS_PER_PROBE` connections per probe slot: the semaphore, not the
pool, is what bounds the work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

import aiohttp

from healthd.clock import Clock
from healthd.version import __version__

T = TypeVar("T")

USER_AGENT = f"healthd/{__version__}"


REQUESTS_PER_PROBE = 5


def make_session(concurrency: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=concurrency * REQUESTS_PER_PROBE,
        limit_per_host=0,
        ttl_dns_cache=300,
        keepalive_timeout=30,
    )
    return aiohttp.ClientSession(
        connector=connector,
        headers={"User-Agent": USER_AGENT},
        # Per-request timeouts come from each probe's deadline; this is the backstop.
        timeout=aiohttp.ClientTimeout(total=60),
        raise_for_status=False,
        trust_env=False,
    )


class SharedAnswers:
    """Answers that many probes would fetch alike, fetched once per `ttl` (single flight).

    A provider's status page is the same for every one of its accounts: four thousand
    Twilio integrations must not fetch status.twilio.com four thousand times a minute.
    Only successful fetches are kept; a failure reaches the callers waiting on that fetch
    and the next caller tries again. Time comes from the injected clock.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._kept: dict[str, tuple[datetime, Any]] = {}
        self._inflight: dict[str, asyncio.Future[Any]] = {}

    async def get(self, key: str, ttl: timedelta, fetch: Callable[[], Awaitable[T]]) -> T:
        while True:
            now = self._clock.now()
            kept = self._kept.get(key)
            if kept is not None and now - kept[0] < ttl:
                return cast(T, kept[1])
            pending = self._inflight.get(key)
            if pending is None:
                return await self._fetch(key, now, fetch)
            try:
                return cast(T, await asyncio.shield(pending))
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this caller was cancelled
                # The caller doing the fetch was cut off (its deadline): fetch again.

    async def _fetch(self, key: str, now: datetime, fetch: Callable[[], Awaitable[T]]) -> T:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await fetch()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # marked retrieved: the waiters re-raise it themselves
            raise
        else:
            self._kept[key] = (now, value)
            future.set_result(value)
            return value
        finally:
            del self._inflight[key]

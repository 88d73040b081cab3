"""When each integration is probed: APScheduler 3.11 interval jobs with jitter.

One job per integration, `max_instances=1` and `coalesce=True`: a probe that is still
running when its next turn comes is not started twice, and missed turns (a suspended
laptop, a stalled loop) collapse into one run instead of a burst. First runs are spread
evenly over each integration's interval, so ten thousand integrations do not all fire in
the same second after a restart; the ones named in `first` (those with an open
incident) run at once.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from healthd.model import Integration

log = structlog.get_logger("healthd.scheduler")


class Scheduler:
    def __init__(
        self,
        integrations: Sequence[Integration],
        run: Callable[[str], Awaitable[object]],
        *,
        jitter: timedelta,
        spread_first_runs: bool = True,
        first: set[str] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._integrations = integrations
        self._run = run
        self._jitter = jitter
        self._spread = spread_first_runs
        self._first = first or set()
        self._rng = rng or random.Random()
        self._scheduler = AsyncIOScheduler(timezone=UTC)

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def start(self) -> None:
        now = datetime.now(UTC)
        for integration in self._integrations:
            interval = integration.interval.total_seconds()
            spread = self._spread and integration.id not in self._first
            offset = self._rng.uniform(0, interval) if spread else 0.0
            self._scheduler.add_job(
                self._job,
                IntervalTrigger(
                    seconds=interval,
                    jitter=min(self._jitter.total_seconds(), interval / 4),
                    start_date=now + timedelta(seconds=offset),
                    timezone=UTC,
                ),
                args=[integration.id],
                id=integration.id,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(interval)),
                next_run_time=now + timedelta(seconds=offset),
            )
        self._scheduler.start()
        log.info("scheduler_started", jobs=len(self._integrations))

    async def _job(self, integration_id: str) -> None:
        await self._run(integration_id)

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

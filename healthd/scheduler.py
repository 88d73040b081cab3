"""When each integration is probed: APScheduler 3.11 interval jobs, one per time slot.

Integrations with the same interval are spread over one-second slots of it (a 60 s
interval has 60 slots), and each slot is one APScheduler job that runs its integrations
together through `Runner.run_many`. APScheduler spends about 0.1 ms of CPU on every job
it runs (its job store, trigger and executor bookkeeping: bench/RESULTS.md), as much as a
third of what a whole probe costs; per slot it is paid once for a hundred or more probes.

What each integration still gets:
- its own turn every interval, its first one spread over the interval (a random slot),
  so ten thousand integrations do not all fire in the same second after a restart; the
  ones named in `first` (those with an open incident) are in slot 0, which runs at once;
- no second run while one is going: a slot job is `max_instances=1`, and a run that is
  still going when another caller asks for it is joined (`Runner.run_many`);
- `coalesce=True`: missed turns (a suspended laptop, a stalled loop) collapse into one run
  instead of a burst; and jitter, applied to the slot's turns.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from healthd.model import Integration

log = structlog.get_logger("healthd.scheduler")

SLOT = timedelta(seconds=1)


def slots(
    integrations: Sequence[Integration], first: set[str], rng: random.Random
) -> dict[tuple[timedelta, int], list[str]]:
    """Integration ids by (interval, slot number): a random slot each, slot 0 for `first`."""
    out: dict[tuple[timedelta, int], list[str]] = defaultdict(list)
    for integration in integrations:
        count = max(1, int(integration.interval / SLOT))
        slot = 0 if integration.id in first else rng.randrange(count)
        out[(integration.interval, slot)].append(integration.id)
    return out


class Scheduler:
    def __init__(
        self,
        integrations: Sequence[Integration],
        run_many: Callable[[Sequence[str]], Awaitable[object]],
        *,
        jitter: timedelta,
        first: set[str] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._integrations = integrations
        self._run_many = run_many
        self._jitter = jitter
        self._first = first or set()
        self._rng = rng or random.Random()
        self._scheduler = AsyncIOScheduler(timezone=UTC)

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def start(self) -> None:
        now = datetime.now(UTC)
        grouped = slots(self._integrations, self._first, self._rng)
        for (interval, slot), ids in sorted(grouped.items()):
            seconds = interval.total_seconds()
            first_run = now + slot * SLOT
            self._scheduler.add_job(
                self._run_many,
                IntervalTrigger(
                    seconds=seconds,
                    jitter=min(self._jitter.total_seconds(), seconds / 4),
                    start_date=first_run,
                    timezone=UTC,
                ),
                args=[ids],
                id=f"{seconds:g}s/{slot}",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(seconds)),
                next_run_time=first_run,
            )
        self._scheduler.start()
        log.info("scheduler_started", integrations=len(self._integrations), jobs=len(grouped))

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

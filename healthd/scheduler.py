"""When each integration is probed: APScheduler 3.11 interval jobs, one per time slot.

Integrations with the same interval are spread over one-second slots of it (a 60 s
interval has 60 slots), and each slot is one APScheduler job that runs its integrations
together through `Runner.run_many`. APScheduler spends about 0.1 ms of CPU on every job
it runs (its job store, trigger and executor bookkeeping: bench/RESULTS.md), as much as a
third of what a whole probe costs; per slot it is paid once for a hundred or more probes.

What each integration still gets:
- its own turn every interval. After a restart its first turn comes one interval after
  its stored `last_checked`, so the fleet keeps the cadence it had and a restart does not
  probe everything at once; one never checked, or checked longer than an interval ago
  (healthd was down), gets a random slot of the interval instead, so ten thousand of them
  do not all fire in the same second either. The ones named in `first` (those with an
  open incident) are in slot 0, which runs at once;
- no second run while one is going: a slot job is `max_instances=1`, and a run that is
  still going when another caller asks for it is joined (`Runner.run_many`);
- `coalesce=True`: missed turns (a suspended laptop, a stalled loop) collapse into one run
  instead of a burst; and jitter, applied to the slot's turns.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from healthd.clock import Clock, SystemClock
from healthd.model import Integration

log = structlog.get_logger("healthd.scheduler")

SLOT = timedelta(seconds=1)


def slots(
    integrations: Sequence[Integration],
    first: set[str],
    rng: random.Random,
    *,
    last_checked: Mapping[str, datetime | None] | None = None,
    now: datetime | None = None,
) -> dict[tuple[timedelta, int], list[str]]:
    """Integration ids by (interval, slot number): slot 0 for `first`; for one checked
    within its interval before `now`, the slot in which that interval ends; a random slot
    for the rest (`last_checked` None, or older than the interval)."""
    checked = last_checked or {}
    out: dict[tuple[timedelta, int], list[str]] = defaultdict(list)
    for integration in integrations:
        count = max(1, int(integration.interval / SLOT))
        last = checked.get(integration.id)
        due = None if last is None or now is None else last + integration.interval - now
        if integration.id in first:
            slot = 0
        elif due is not None and timedelta(0) <= due <= integration.interval:
            slot = min(count - 1, int(due / SLOT))
        else:
            slot = rng.randrange(count)
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
        last_checked: Mapping[str, datetime | None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._integrations = integrations
        self._run_many = run_many
        self._jitter = jitter
        self._first = first or set()
        self._rng = rng or random.Random()
        self._last_checked = last_checked or {}
        self._clock = clock or SystemClock()
        self._scheduler = AsyncIOScheduler(timezone=UTC)

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def start(self) -> None:
        # Placed by the injected clock (the stored `last_checked` is its time); the jobs
        # run on APScheduler's, the wall clock, from now.
        grouped = slots(
            self._integrations,
            self._first,
            self._rng,
            last_checked=self._last_checked,
            now=self._clock.now(),
        )
        now = datetime.now(UTC)
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

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

The fleet may change while it runs (the registry API): `add` puts an integration in a
random slot of its interval (its first run is the caller's, at once), `remove` takes it out
of its slot, and a slot left empty loses its job. A slot job reads its list when it fires.
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
        self._slots: dict[tuple[timedelta, int], list[str]] = {}
        self._slot_of: dict[str, tuple[timedelta, int]] = {}

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
        for key, ids in sorted(grouped.items()):
            self._slots[key] = ids
            self._slot_of.update(dict.fromkeys(ids, key))
            self._add_job(key, now + key[1] * SLOT)
        self._scheduler.start()
        log.info("scheduler_started", integrations=len(self._integrations), jobs=len(grouped))

    def add(self, integration: Integration) -> None:
        """Schedules an integration added (or changed) at run time; its next scheduled run
        is one interval away at most, the caller runs it now."""
        self.remove(integration.id)
        count = max(1, int(integration.interval / SLOT))
        key = (integration.interval, self._rng.randrange(count))
        self._slot_of[integration.id] = key
        ids = self._slots.get(key)
        if ids is not None:
            ids.append(integration.id)
            return
        self._slots[key] = [integration.id]
        self._add_job(key, datetime.now(UTC) + integration.interval)

    def remove(self, integration_id: str) -> None:
        key = self._slot_of.pop(integration_id, None)
        if key is None:
            return
        ids = self._slots[key]
        ids.remove(integration_id)
        if not ids:
            del self._slots[key]
            self._scheduler.remove_job(_job_id(key))

    def _add_job(self, key: tuple[timedelta, int], first_run: datetime) -> None:
        seconds = key[0].total_seconds()
        self._scheduler.add_job(
            self._run_slot,
            IntervalTrigger(
                seconds=seconds,
                jitter=min(self._jitter.total_seconds(), seconds / 4),
                start_date=first_run,
                timezone=UTC,
            ),
            args=[key],
            id=_job_id(key),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(seconds)),
            next_run_time=first_run,
        )

    async def _run_slot(self, key: tuple[timedelta, int]) -> object:
        return await self._run_many(list(self._slots.get(key, ())))

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)


def _job_id(key: tuple[timedelta, int]) -> str:
    return f"{key[0].total_seconds():g}s/{key[1]}"

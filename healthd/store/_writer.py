"""Group commit for `record_run`, the store's hot write: the part no SQL dialect changes.

Runs queue up while the backend is busy writing and are written together, one batch per
transaction, when it is free; each caller returns once the transaction holding its run has
committed. One transaction (and, for SQLite, one thread hop) per probe was about a fifth of
the daemon's CPU at high concurrency (bench/RESULTS.md).

The contract a backend's batch write keeps, and what this module does with it:

- `write(batch)` writes the batch in one transaction, in queue order (a later run of the
  same integration wins), and returns once it has committed; or it rolls back and raises.
- It raises `RowsRefused` when the database refused the batch's rows: some run may be at
  fault, so each run of a batch of several is written again alone, and only the run that
  cannot be written fails; the others land. Every run stays all-or-nothing.
- Anything else it raises (no write lock, a failed COMMIT, a lost connection) is no run's
  fault, and every caller in the batch hears it.
- Batches are written one at a time, in the order their runs were queued.
- A caller that stops waiting (cancelled) does not take its run back: it is written.
  `flush()` (the store's close) returns once everything queued has been written.
- `pace`: a batch starts no sooner than `pace` seconds after the previous one committed,
  and whatever queues meanwhile joins it. Probes finish one at a time, a few milliseconds
  apart, so without it nearly every transaction held one run: 150-200 µs of CPU per run
  (the thread hop, BEGIN, the WAL frames of COMMIT) where a batch of many costs about 50
  (bench/store.py). A run arriving after a quiet spell is written at once; one arriving
  under load waits at most `pace` more.

The writer knows nothing of SQL or threads: a backend hands it an async `write` (SQLite's
hops to its thread; an async driver awaits the database directly).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from healthd.errors import StoreError

T = TypeVar("T")


class RowsRefused(StoreError):
    """Raised by a batch write whose rows the database refused (rolled back): a constraint,
    a trigger, a value it cannot store. Callers see a StoreError naming the cause."""


class GroupCommit(Generic[T]):
    """Queues items for `write` and writes whatever is queued as one batch; see the module."""

    def __init__(
        self,
        write: Callable[[list[T]], Awaitable[None]],
        *,
        label: str,
        task_name: str,
        pace: float = 0.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`label` starts the error a caller gets when the loop closes under its run;
        `sleep` and `monotonic` are how the pace is kept (tests drive them)."""
        self._write = write
        self._label = label
        self._task_name = task_name
        self._pace = pace
        self._sleep = sleep
        self._monotonic = monotonic
        self._last_commit = -float("inf")
        # Two parallel lists rather than a pair per run: the batch is handed to `write` as is.
        self._items: list[T] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> None:
        """Returns once the transaction holding `item` has committed; raises what it failed with."""
        done = asyncio.get_running_loop().create_future()
        self._items.append(item)
        self._waiters.append(done)
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name=self._task_name)
        await done

    async def flush(self) -> None:
        """Returns once everything submitted so far has been written (or has failed)."""
        if self._task is not None:
            await asyncio.wait({self._task})

    async def _drain(self) -> None:
        """Writes what is queued, one batch per transaction, until the queue is empty."""
        waiters: list[asyncio.Future[None]] = []
        try:
            while self._items:
                wait = self._last_commit + self._pace - self._monotonic()
                if wait > 0:
                    await self._sleep(wait)  # what queues meanwhile joins this batch
                batch, self._items = self._items, []
                waiters, self._waiters = self._waiters, []
                outcomes = await self._outcomes(batch)
                self._last_commit = self._monotonic()
                for done, outcome in zip(waiters, outcomes, strict=True):
                    _settle(done, outcome)
                waiters = []
        finally:
            self._task = None
            # Only when this task is cancelled (the loop is closing) is anything left here.
            for done in (*waiters, *self._waiters):
                _settle(done, StoreError(f"{self._label}: record_run cancelled"))
            self._items, self._waiters = [], []

    async def _outcomes(self, batch: list[T]) -> list[BaseException | None]:
        """Each item's outcome: None once written, else the error its caller gets."""
        try:
            await self._write(batch)
        except RowsRefused as exc:
            if len(batch) == 1:
                return [exc]
            return [await self._alone(item) for item in batch]
        except Exception as exc:  # no run's fault: every caller hears it
            return [exc] * len(batch)
        return [None] * len(batch)

    async def _alone(self, item: T) -> BaseException | None:
        try:
            await self._write([item])
        except Exception as exc:
            return exc
        return None


def _settle(done: asyncio.Future[None], outcome: BaseException | None) -> None:
    """Tells a caller how its run went, unless it stopped waiting (cancelled)."""
    if done.done():
        return
    if outcome is None:
        done.set_result(None)
    else:
        done.set_exception(outcome)

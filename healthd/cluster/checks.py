"""Live checks ("check now") across replicas: the owner runs it, once, whoever is asked.

A live check (`POST .../check`) may reach any replica, but only the integration's owner
(`Shares`) probes it: its state's compare-and-set would refuse any other replica's run,
and a second prober would double the provider's requests. So the replica asked:

- runs the check itself when it owns the integration (`run`: the runner's `run_once`,
  which joins a run already under way);
- otherwise tells the replicas `check <id>` (NOTIFY, `PostgresStore.tell`) and waits, at
  most `answer_within` seconds, for `checked <id>`. The owner hears the request, runs it the same
  way (so replicas asked at once join one run: one probe), and, its run stored, tells
  `checked <id>`; the replica asked then reads that run back from the database (`read_back`)
  and answers with it. An owner that does not answer in time (dead, its share not yet
  taken over) leaves the answer with the previous result (`CheckNotAnswered`).

Every replica hears every message; a replica that is not the owner ignores `check`, and
one that is not waiting ignores `checked`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from healthd.errors import HealthdError, IntegrationNotFound, StoreError
from healthd.store.postgresql import PostgresStore

log = structlog.get_logger("healthd.cluster")

CHECK = "check"
CHECKED = "checked"


class CheckNotAnswered(HealthdError):
    """The integration's owner did not run the check within the time given."""


class LiveChecks:
    """See the module. `heard` is the store's `told` callback (`watch_meta`)."""

    def __init__(
        self,
        store: PostgresStore,
        *,
        owns: Callable[[str], bool],
        run: Callable[[str], Awaitable[object]],
        read_back: Callable[[list[str]], Awaitable[None]],
    ) -> None:
        self._store = store
        self._owns = owns
        self._run = run
        self._read_back = read_back
        self._waiting: dict[str, list[asyncio.Future[None]]] = {}
        self._runs: set[asyncio.Task[None]] = set()  # checks asked by other replicas

    async def check(self, integration_id: str, answer_within: float) -> None:
        """Runs the check here or has its owner run it; returns once its run is stored and
        known here. Raises CheckNotAnswered, StoreError."""
        if self._owns(integration_id):
            await self._run(integration_id)
            return
        answered = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(integration_id, []).append(answered)
        try:
            await self._store.tell([f"{CHECK} {integration_id}"])
            async with asyncio.timeout(answer_within):
                await answered
        except TimeoutError:
            raise CheckNotAnswered(
                f"{integration_id}: its owner did not run the check within {answer_within:g} s"
            ) from None
        finally:
            waiting = self._waiting.get(integration_id, [])
            if answered in waiting:
                waiting.remove(answered)
            if not waiting:
                self._waiting.pop(integration_id, None)
        await self._read_back([integration_id])

    def heard(self, message: str) -> None:
        kind, _, integration_id = message.partition(" ")
        if kind == CHECK and self._owns(integration_id):
            task = asyncio.create_task(self._answer(integration_id), name=f"check:{message}")
            self._runs.add(task)
            task.add_done_callback(self._runs.discard)
        elif kind == CHECKED:
            for answered in self._waiting.pop(integration_id, []):
                if not answered.done():
                    answered.set_result(None)

    async def _answer(self, integration_id: str) -> None:
        try:
            await self._run(integration_id)
            await self._store.tell([f"{CHECKED} {integration_id}"])
        except (StoreError, IntegrationNotFound) as exc:  # removed, or the store is away:
            # the asker's wait runs out, and its answer says not fresh
            log.warning("live_check_not_answered", integration=integration_id, error=str(exc))

    async def close(self) -> None:
        """Cancels the checks other replicas asked for that are still running."""
        for task in list(self._runs):
            task.cancel()
        await asyncio.gather(*self._runs, return_exceptions=True)

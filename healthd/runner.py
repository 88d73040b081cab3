"""One probe run, from start to stored state: the single path every check takes.

    run_once(id) -> semaphore -> deadline -> probing.check -> state.step -> store -> views,
                    metrics -> tell the alert engine

Scheduled runs and "check now" from the API share this path, and two callers asking for
the same integration at once share one run. The deadline is the integration's timeout,
set here rather than trusted to the probe: a provider that hangs is cut off and shows as
unreachable, and the slot it held goes to the next probe.

A run that proves nothing (`healthd.state.proves_nothing`: a probe that crashed) is shown
as the integration's latest result (`results`, the API), counted as healthd's own error
(`healthd_probe_errors_total`), and kept out of what the alert rules read: `snapshot()`
hands them each integration's latest run that did prove something, so a crash can neither
resolve a page nor hold one back.

The in-memory states are the truth and the store write follows them: a run updates
`states`, the views and the alert engine first, then writes. A write that fails (a full
disk) keeps the run in `_unwritten` (the latest state and result, every transition since
the last write) and the next run of that integration writes it all, so the state machine
and the pages keep moving while the store is failing, and what is pending lands once the
store is back; `write_unwritten` writes the rest at shutdown.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import aiohttp
import structlog

from healthd.catalog import Catalog
from healthd.clock import Clock
from healthd.errors import IntegrationNotFound, StoreError
from healthd.http import SharedAnswers
from healthd.interfaces import DeliverySink, Probe, ProbeContext, Store
from healthd.metrics import Instruments, IntegrationSeries, View
from healthd.model import (
    Category,
    Finding,
    Integration,
    IntegrationState,
    ProbeResult,
    RunChange,
    Status,
    Transition,
)
from healthd.probing import check
from healthd.registry import probe_class
from healthd.state import proves_nothing, step

log = structlog.get_logger("healthd.runner")


def probe_deadline(integration: Integration) -> float:
    """Seconds a run may take: the integration's timeout (config keeps it below the interval)."""
    return integration.timeout.total_seconds()


@dataclass(frozen=True, slots=True)
class _Unwritten:
    """An integration's runs the store has not taken yet: the latest, with every transition."""

    state: IntegrationState
    result: ProbeResult
    transitions: tuple[Transition, ...]


class _Place:
    """One place in the runner's semaphore, acquired before its run's task exists; given
    back once, whichever comes first: the probe's end or the task's."""

    def __init__(self, semaphore: asyncio.Semaphore) -> None:
        self._semaphore: asyncio.Semaphore | None = semaphore

    def give_back(self, _task: object = None) -> None:
        if self._semaphore is not None:
            self._semaphore.release()
            self._semaphore = None


class Runner:
    def __init__(
        self,
        *,
        integrations: Sequence[Integration],
        store: Store,
        session: aiohttp.ClientSession,
        catalog: Catalog,
        clock: Clock,
        instruments: Instruments,
        concurrency: int,
        on_result: Callable[[RunChange], None] = lambda _change: None,
        deliveries: DeliverySink | None = None,
    ) -> None:
        self._deliveries = deliveries  # the delivery ledger, which probes report messages to
        self.integrations: dict[str, Integration] = {i.id: i for i in integrations}
        self._probes: dict[str, Probe[Any]] = {
            p: probe_class(p)() for p in {i.provider for i in integrations}
        }
        self._store = store
        self._session = session
        self._catalog = catalog
        self._clock = clock
        self._instruments = instruments
        self._semaphore = asyncio.Semaphore(concurrency)
        self._shared = SharedAnswers(clock)
        self._on_result = on_result
        self._inflight: dict[str, asyncio.Task[ProbeResult]] = {}
        self.states: dict[str, IntegrationState] = {}
        self.results: dict[str, ProbeResult] = {}
        # The latest result of each integration that proved something: what the rules read.
        self._evidence: dict[str, ProbeResult] = {}
        self._unwritten: dict[str, _Unwritten] = {}
        # Each integration's metrics text, rendered after each of its runs (healthd.metrics).
        self.series = IntegrationSeries()

    async def load(self) -> None:
        """Pick up state and results from the store, so a restart continues where it stopped."""
        stored = await self._store.load_states()
        results = await self._store.latest_results()
        for iid in self.integrations:
            self._take(iid, stored, results)

    def adopt(
        self,
        integration_ids: Iterable[str],
        states: Mapping[str, IntegrationState],
        results: Mapping[str, ProbeResult],
    ) -> list[RunChange]:
        """Takes these integrations' state and latest result as read from the store by
        healthd.cluster (another replica's runs: those another replica probes, or has just
        handed over, never one this replica is running); one not stored starts afresh.
        An id no longer in the fleet is skipped (removed while it was read).

        Returns what changed for each one taken, as a run's change does, so the alert
        engine follows a read-back in O(what was read), not by rebuilding its fleet
        (`AlertEngine.reread`)."""
        changes = []
        for iid in integration_ids:
            if iid not in self.integrations:
                continue
            before = self.states.get(iid) or IntegrationState(integration_id=iid)
            before_result = self._evidence.get(iid)
            self._take(iid, states, results)
            changes.append(
                RunChange(
                    before=before,
                    before_result=before_result,
                    after=self.states[iid],
                    result=self._evidence.get(iid),
                )
            )
        return changes

    def _take(
        self, iid: str, states: Mapping[str, IntegrationState], results: Mapping[str, ProbeResult]
    ) -> None:
        """One integration's stored state and latest result, as `load` and `adopt` take them
        (`load` builds no changes: the engine builds its fleet from the snapshot then)."""
        self.states[iid] = states.get(iid) or IntegrationState(integration_id=iid)
        if iid in results:
            self.results[iid] = results[iid]
            self._evidence[iid] = results[iid]
        self._refresh_view(iid)

    # -- the fleet at run time (healthd.fleet, the registry API) ----------------------

    def add(self, integration: Integration) -> None:
        """Adds an integration, or replaces the one with its id: its state, results and
        series stay (a new config of the same account continues its history). A run of
        the replaced config still under way is not joined by later callers, and what it
        finds is dropped: it checked credentials or options no longer in force."""
        iid = integration.id
        if integration.provider not in self._probes:
            self._probes[integration.provider] = probe_class(integration.provider)()
        self.integrations[iid] = integration
        self._inflight.pop(iid, None)
        self.states.setdefault(iid, IntegrationState(integration_id=iid))
        self._refresh_view(iid)

    def remove(self, integration_id: str) -> None:
        """Takes an integration out: no more runs, no series, nothing for the rules (its
        open incidents resolve on the engine's next evaluation). What the store holds of
        it (state, transitions, incidents) stays for its retention."""
        self.get(integration_id)
        del self.integrations[integration_id]
        self._inflight.pop(integration_id, None)
        for table in (self.states, self.results, self._evidence, self._unwritten):
            table.pop(integration_id, None)
        self.series.remove(integration_id)

    def get(self, integration_id: str) -> Integration:
        try:
            return self.integrations[integration_id]
        except KeyError:
            raise IntegrationNotFound(integration_id) from None

    async def run_once(self, integration_id: str) -> ProbeResult:
        """Run (or join the run already under way of) one integration's probe.

        Shielded: a caller that gives up (an API request cut off) does not cancel a run
        that other callers may be sharing.
        """
        return await asyncio.shield(self._start(self.get(integration_id)))

    async def run_many(self, integration_ids: Sequence[str]) -> list[ProbeResult]:
        """Run (or join) several integrations' probes; the scheduler's path.

        Each run's task is created only once the semaphore gives it a place, so a batch
        waits as one waiter, not as one task per integration: a fleet that falls behind
        (100,000 at 60 s) kept tens of thousands of tasks waiting, each a frame and a
        future, and cancelling them at shutdown cost O(n²) in asyncio's semaphore (each
        cancelled waiter is removed from the middle of its queue): 94 s at 100,000.

        Not shielded, unlike `run_once`: its callers (a scheduler slot, `healthd check`)
        own these runs, and a shield per run costs a future and two callbacks each.
        """
        integrations = [self.get(i) for i in integration_ids]
        tasks: list[asyncio.Task[ProbeResult]] = []
        try:
            for integration in integrations:
                task = self._inflight.get(integration.id)
                if task is None:
                    await self._semaphore.acquire()
                    task = self._inflight.get(integration.id)  # started meanwhile?
                    if task is None:
                        task = self._start(integration, _Place(self._semaphore))
                    else:
                        self._semaphore.release()
                tasks.append(task)
            return list(await asyncio.gather(*tasks))
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            raise

    def _start(
        self, integration: Integration, place: _Place | None = None
    ) -> asyncio.Task[ProbeResult]:
        """The run under way for `integration`, or a new one. `place`: the semaphore
        place the caller acquired for it, given back once the probe is done (or when
        the task ends, should it be cancelled before it starts)."""
        task = self._inflight.get(integration.id)
        if task is None:
            task = asyncio.create_task(
                self._run(integration, place), name=f"probe:{integration.id}"
            )
            self._inflight[integration.id] = task
            task.add_done_callback(partial(self._finished, integration.id))
            if place is not None:
                task.add_done_callback(place.give_back)
        return task

    def _finished(self, integration_id: str, task: asyncio.Task[ProbeResult]) -> None:
        if self._inflight.get(integration_id) is task:  # not a replaced config's run
            del self._inflight[integration_id]

    async def _run(self, integration: Integration, place: _Place | None) -> ProbeResult:
        if place is None:
            async with self._semaphore:
                result = await self._probe(integration)
        else:
            try:
                result = await self._probe(integration)
            finally:
                place.give_back()
        if self.integrations.get(integration.id) is not integration:
            return result  # removed or replaced while it ran (`add`, `remove`)
        prev = self.states.get(integration.id) or IntegrationState(integration_id=integration.id)
        prev_evidence = self._evidence.get(integration.id)
        now = self._clock.now()
        state, transitions = step(prev, result, now, integration.thresholds)
        self.states[integration.id] = state
        self.results[integration.id] = result
        if not proves_nothing(result) or prev_evidence is None:
            self._evidence[integration.id] = result
        evidence = self._evidence[integration.id]
        self._refresh_view(integration.id)
        self._instruments.observe(integration, result)
        for t in transitions:
            log.info(
                "transition",
                integration=integration.id,
                provider=integration.provider,
                tenant=integration.tenant,
                kind=t.kind.value,
                from_status=t.from_status.value,
                to_status=t.to_status.value,
            )
        self._on_result(
            RunChange(before=prev, before_result=prev_evidence, after=state, result=evidence)
        )
        await self._write(_Unwritten(state, result, tuple(transitions)))
        return result

    async def _write(self, run: _Unwritten) -> None:
        """Writes `run` with whatever of its integration is still unwritten; on a StoreError
        (the store's health reports it) keeps all of it for the next try."""
        iid = run.state.integration_id
        earlier = self._unwritten.pop(iid, None)
        if earlier is not None:
            run = _Unwritten(run.state, run.result, earlier.transitions + run.transitions)
        try:
            await self._store.record_run(run.state, run.result, run.transitions)
        except StoreError:
            self._unwritten[iid] = run

    async def write_unwritten(self) -> int:
        """Writes every integration's unwritten runs (at shutdown, once no run is under way);
        returns how many integrations are still unwritten."""
        for run in list(self._unwritten.values()):
            await self._write(run)
        if self._unwritten:
            log.error("runs_not_stored", integrations=len(self._unwritten))
        return len(self._unwritten)

    async def _probe(self, integration: Integration) -> ProbeResult:
        deadline = probe_deadline(integration)
        ctx = ProbeContext(
            session=self._session,
            clock=self._clock,
            catalog=self._catalog,
            timeout=deadline,
            last_checked=self._last_checked(integration.id),
            shared=self._shared,
            deliveries=self._deliveries,
        )
        started = self._clock.now()
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(deadline):
                return await check(self._probes[integration.provider], integration, ctx)
        except TimeoutError:
            return self._own_result(
                integration,
                started,
                time.perf_counter() - t0,
                "healthd.probe_timeout",
                Status.UNREACHABLE,
                f"No answer within {deadline:g}s; the probe was cut off",
            )
        except Exception as exc:  # a bug in a probe must not stop the others
            # The type only: an exception's text may carry what a provider echoed back.
            log.error(
                "probe_crashed",
                integration=integration.id,
                provider=integration.provider,
                error_type=type(exc).__name__,
            )
            self._instruments.probe_error(integration, "crashed")
            return self._own_result(
                integration,
                started,
                time.perf_counter() - t0,
                "healthd.probe_error",
                Status.UNKNOWN,
                f"The {integration.display_name} check failed inside healthd: a fault in"
                " healthd, not the provider's (healthd's log has the details)",
            )

    def _own_result(
        self,
        integration: Integration,
        started: datetime,
        duration: float,
        code: str,
        status: Status,
        summary: str,
    ) -> ProbeResult:
        entry = self._catalog.get("healthd", code)
        finding = Finding(
            check="reachability" if status is Status.UNREACHABLE else "probe",
            status=status,
            code=code,
            category=entry.category if entry else Category.UNKNOWN,
            summary=summary,
            remediation=entry.fix if entry else "",
            network_error=status is Status.UNREACHABLE,
        )
        return ProbeResult(
            integration_id=integration.id,
            status=status,
            started_at=started,
            duration_seconds=duration,
            findings=(finding,),
        )

    def _last_checked(self, integration_id: str) -> datetime | None:
        state = self.states.get(integration_id)
        return state.last_checked if state else None

    def _refresh_view(self, integration_id: str) -> None:
        result = self.results.get(integration_id)
        self.series.update(
            View(
                integration=self.integrations[integration_id],
                state=self.states[integration_id],
                last_duration=result.duration_seconds if result else None,
            )
        )

    def snapshot(
        self,
    ) -> tuple[
        Mapping[str, Integration], Mapping[str, IntegrationState], Mapping[str, ProbeResult]
    ]:
        """The fleet as the alert rules read it: each integration's latest run that proved
        something, not a crash after it."""
        return dict(self.integrations), dict(self.states), dict(self._evidence)

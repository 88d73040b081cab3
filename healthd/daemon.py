"""The daemon: every component opened on one exit stack, closed in reverse.

    store -> shared HTTP session -> runner (state from the store) -> alert engine
    -> outbox worker -> HTTP listener -> scheduler

Start-up order matters: the runner loads the stored state before the first probe, so a
restart continues the ten-minute timer instead of resetting it; the outbox requeues rows
a crash left in flight before it sends anything. Shutdown is bounded: the outbox gets a
few seconds to flush, then whatever is left waits in the store for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from healthd import catalog as catalog_module
from healthd.alerts.engine import AlertEngine
from healthd.alerts.notifiers import build_notifiers
from healthd.alerts.outbox import Held, Outbox
from healthd.api.app import Api
from healthd.api.silences import silence_routes
from healthd.clock import Clock, SystemClock
from healthd.config import Config
from healthd.http import make_session
from healthd.interfaces import Notifier, Store
from healthd.metrics import HealthCollector, Instruments, MetricsEndpoint
from healthd.model import Incident
from healthd.runner import Runner
from healthd.scheduler import Scheduler
from healthd.store import open_store
from healthd.store.health import MonitoredStore, StoreHealth

log = structlog.get_logger("healthd.daemon")

FLUSH_SECONDS = 5.0


class Daemon:
    """`async with Daemon(config) as d: await d.wait()`.

    `schedule=False` leaves the scheduler off (tests drive `runner.run_once` themselves,
    with a FakeClock); `notifiers` replaces the configured ones; `store` the configured
    store (tests wrap a real one to inject failures).
    """

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        schedule: bool = True,
        notifiers: dict[str, Notifier] | None = None,
        store: Store | None = None,
        alert_tick: float = 5.0,
        outbox_poll: float = 0.5,
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self._schedule = schedule
        self._notifiers = notifiers
        self._given_store = store
        self._alert_tick = alert_tick
        self._outbox_poll = outbox_poll
        self._stack = AsyncExitStack()
        self._stop = asyncio.Event()
        self._ready = False
        self.registry = CollectorRegistry()
        self.url = ""

    async def __aenter__(self) -> Daemon:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._ready = False
        self._stop.set()
        await self._stack.aclose()
        log.info("stopped")

    async def _start(self) -> None:
        cfg = self.config
        self.instruments = Instruments(self.registry)
        self.store_health = StoreHealth(self.clock, on_error=self.instruments.store_error)
        self.instruments.watch_store(lambda: self.store_health.healthy)
        self.store = MonitoredStore(self._given_store or open_store(cfg.store), self.store_health)
        await self.store.open()
        self._stack.push_async_callback(self.store.close)
        requeued = await self.store.requeue_stale()

        self.session = make_session(cfg.defaults.concurrency)
        self._stack.push_async_callback(self.session.close)

        self.catalog = catalog_module.load()
        self.engine: AlertEngine
        self.runner = Runner(
            integrations=cfg.integrations,
            store=self.store,
            session=self.session,
            catalog=self.catalog,
            clock=self.clock,
            instruments=self.instruments,
            concurrency=cfg.defaults.concurrency,
            on_result=lambda change: self.engine.observe(change),
        )
        await self.runner.load()
        # Last before the store closes: runs a failing store could not take, written now.
        self._stack.push_async_callback(self.runner.write_unwritten)
        held = Held()  # events decided while the store cannot write, sent from memory
        self.engine = AlertEngine(
            snapshot=self.runner.snapshot,
            store=self.store,
            settings=cfg.alerting,
            clock=self.clock,
            tick=self._alert_tick,
            held=held,
            health=self.store_health,
        )
        open_incidents = await self.engine.load()

        notifiers = (
            self._notifiers
            if self._notifiers is not None
            else build_notifiers(cfg.alerting, self.session, self.clock)
        )
        for notifier in notifiers.values():
            self._stack.push_async_callback(notifier.close)
        self.outbox = Outbox(
            self.store,
            notifiers,
            self.clock,
            cfg.alerting.outbox,
            on_event=self.instruments.alert_event,
            held=held,
        )
        self._stack.push_async_callback(self.outbox.flush, FLUSH_SECONDS)

        self.registry.register(
            HealthCollector(
                self.runner.series, self.engine.alert_view, lambda: self.clock.now().timestamp()
            )
        )
        api = Api(
            runner=self.runner,
            store=self.store,
            catalog=self.catalog,
            metrics=MetricsEndpoint(self.registry),
            config=cfg.api,
            ready=self.not_ready,
        )
        if api.tokens.open:
            log.warning("api_open", message="api.tokens is empty: every API caller is admin")
        self.app = app = api.app()
        app.add_routes(silence_routes(self.engine, self.runner.integrations))
        app_runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await app_runner.setup()
        self._stack.push_async_callback(app_runner.cleanup)
        host, port = cfg.listen
        site = web.TCPSite(app_runner, host, port)
        await site.start()
        bound = app_runner.addresses[0]
        self.url = f"http://{host}:{bound[1]}"

        self._task(self.outbox.run(self._stop, self._outbox_poll), "outbox")
        if self._schedule:
            self._task(self.engine.run(self._stop), "alert-engine")
            # Integrations with an incident open from before the restart are probed first,
            # so a condition that ended while healthd was down is resolved promptly.
            self.scheduler = Scheduler(
                cfg.integrations,
                self.runner.run_many,
                jitter=cfg.defaults.jitter,
                first=set(_incident_integrations(open_incidents)),
            )
            self.scheduler.start()
            self._stack.callback(self.scheduler.shutdown)
        self._ready = True
        log.info(
            "started",
            listen=self.url,
            integrations=len(cfg.integrations),
            open_incidents=len(open_incidents),
            outbox_requeued=requeued,
        )

    def _task(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.create_task(coro, name=name)

        async def _stop_task() -> None:
            self._stop.set()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                async with asyncio.timeout(FLUSH_SECONDS):
                    await asyncio.shield(task)
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        self._stack.push_async_callback(_stop_task)

    def not_ready(self) -> str | None:
        """Why `/readyz` answers 503, or None when ready."""
        if not self._ready:
            return "healthd is starting or stopping"
        if not self.store_health.healthy:
            return f"the store is failing: {self.store_health.reason}"
        return None

    def stop(self) -> None:
        self._stop.set()

    async def wait(self) -> None:
        """Run until SIGINT/SIGTERM or `stop()`."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._stop.set)
        await self._stop.wait()


def _incident_integrations(incidents: list[Incident]) -> list[str]:
    """The integrations an incident is about: one (`integration`) or several (`integrations`)."""
    ids: set[str] = set()
    for incident in incidents:
        one = incident.details.get("integration")
        if isinstance(one, str):
            ids.add(one)
        ids.update(str(i) for i in incident.details.get("integrations", []))
    return sorted(ids)

"""The daemon: every component opened on one exit stack, closed in reverse.

    store -> shared HTTP session -> runner (state from the store) -> alert engine
    -> outbox worker -> HTTP listener -> scheduler

Start-up order matters: the runner loads the stored state before the first probe, so a
restart continues the ten-minute timer instead of resetting it; the outbox requeues rows
a crash left in flight before it sends anything. Shutdown is bounded: probe runs and the
alert engine are cancelled at once, the outbox gets FLUSH_SECONDS in all to end its send
and deliver what is due (whatever is left waits in the store for the next start), the
listener 2 s for open requests, the notifiers 1 s to close: about 8 s at worst.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from healthd import catalog as catalog_module
from healthd.alerts.content_spike import ContentSpike
from healthd.alerts.engine import AlertEngine
from healthd.alerts.messages_failing import MessagesFailing
from healthd.alerts.notifiers import build_notifiers
from healthd.alerts.outbox import Held, Outbox
from healthd.alerts.silences import META_KEY as SILENCES_KEY
from healthd.api.app import LIVE_SLACK_SECONDS, Api
from healthd.api.callbacks import CallbackRoutes
from healthd.api.examples import example_routes
from healthd.api.history import history_routes
from healthd.api.incidents import incident_routes
from healthd.api.listener import Listener, connection_limit
from healthd.api.registry import registry_routes
from healthd.api.silences import silence_routes
from healthd.api.workspace_tokens import token_table
from healthd.clock import Clock, SystemClock
from healthd.cluster import metrics as cluster_metrics
from healthd.cluster.checks import LiveChecks
from healthd.cluster.lease import AlertLease
from healthd.cluster.shares import Shares
from healthd.config import Config
from healthd.errors import ConfigError, StoreError
from healthd.fleet import Fleet, Hooks
from healthd.http import REQUESTS_PER_PROBE, make_session
from healthd.interfaces import Notifier, Store
from healthd.ledger import DeliveryLedger
from healthd.metrics import (
    DeliveryInstruments,
    DeliveryRates,
    HealthCollector,
    Instruments,
    MetricsEndpoint,
)
from healthd.model import DeliveryOutcome, Incident, Integration
from healthd.reload import Reloader
from healthd.runner import Runner, probe_deadline
from healthd.scheduler import Scheduler
from healthd.store import PostgresStore, open_store
from healthd.store.health import MonitoredStore, StoreHealth
from healthd.store.postgresql import REGISTRY_KEY

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
        self._probing: set[asyncio.Task[Any]] = set()
        self._reloads: set[asyncio.Task[None]] = set()  # silences set by another replica
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
        inner = self._given_store or open_store(cfg.store, cfg.history.retention())
        self.store = MonitoredStore(inner, self.store_health)
        await self.store.open()
        self._stack.push_async_callback(self.store.close)
        requeued = await self.store.requeue_stale()

        self.session = make_session(cfg.defaults.concurrency)
        self._stack.push_async_callback(self.session.close)

        # The registry API's integrations, stored with their credentials sealed; a key
        # that cannot open them stops the start here (ConfigError, exit 2), store untouched.
        self.fleet = Fleet(config=cfg, store=self.store, clock=self.clock)
        integrations = [*cfg.integrations, *await self.fleet.load()]

        self.catalog = catalog_module.load()
        await self._start_ledger()
        self.engine: AlertEngine
        self.runner = Runner(
            integrations=integrations,
            store=self.store,
            session=self.session,
            catalog=self.catalog,
            clock=self.clock,
            instruments=self.instruments,
            concurrency=cfg.defaults.concurrency,
            on_result=lambda change: self.engine.observe(change),
            deliveries=self.ledger,
        )
        await self.runner.load()
        # Replicas on one PostgreSQL: one evaluates the rules at a time, and each probes its
        # share of the fleet (healthd.cluster).
        cluster = inner if isinstance(inner, PostgresStore) else None
        self.lease = AlertLease(cluster, seconds=cluster.member_lease) if cluster else None
        # Last before the store closes: runs a failing store could not take, written now.
        self._stack.push_async_callback(self.runner.write_unwritten)
        self._start_delivery()
        held = Held()  # events decided while the store cannot write, sent from memory
        self.engine = AlertEngine(
            snapshot=self.runner.snapshot,
            store=self.store,
            settings=cfg.alerting,
            clock=self.clock,
            tick=self._alert_tick,
            held=held,
            health=self.store_health,
            lease=self.lease,
        )
        open_incidents = await self.engine.load()
        self.shares: Shares | None = None
        self.checks: LiveChecks | None = None
        self._read_others: Callable[[list[str]], Awaitable[None]] | None = None
        if cluster is not None and self.lease is not None:
            self._read_others = read_back = partial(self._read_back, cluster)
            cluster.on_state_conflict = self._state_conflict
            self.shares = Shares(
                cluster,
                lambda: list(self.runner.integrations),
                read_back,
                partial(self._read_back, cluster, changed=True),
            )
            self.checks = LiveChecks(
                cluster, owns=self._owns, run=self.runner.run_once, read_back=read_back
            )
            self._stack.push_async_callback(self.checks.close)
            await self.shares.refresh()  # before the first probe: this replica's share
            cluster_metrics.register(self.registry, self.lease, self.shares)
            self._stack.push_async_callback(self._release_lease, self.lease)

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
            on_delivered=self.engine.refresh_view,
            held=held,
        )

        self.registry.register(
            HealthCollector(
                self.runner.series,
                self.engine.alert_view,
                lambda: self.clock.now().timestamp(),
                detail_limit=cfg.api.metrics_detail_limit,
            )
        )
        api = Api(
            runner=self.runner,
            store=self.store,
            catalog=self.catalog,
            metrics=MetricsEndpoint(self.registry),
            config=cfg.api,
            ready=self.not_ready,
            live=self._live_check,
        )
        if api.tokens.open:
            log.warning("api_open", message="api.tokens is empty: every API caller is admin")
        self.api = api
        self.app = app = api.app()
        app.add_routes(incident_routes(self.store))
        app.add_routes(silence_routes(self.engine, self.runner.integrations))
        app.add_routes(history_routes(self.store, self.runner.integrations, self.clock))
        app.add_routes(registry_routes(self.fleet))
        app.add_routes(self._callback_routes())
        app.add_routes(
            example_routes(self.store, self.runner.integrations, self.catalog, self.clock)
        )
        app_runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await app_runner.setup()
        self._stack.push_async_callback(app_runner.cleanup)
        host, port = cfg.listen
        probe_sockets = min(cfg.defaults.concurrency, len(integrations)) * REQUESTS_PER_PROBE
        self.listener = listener = Listener(
            app_runner,
            host,
            port,
            max_connections=connection_limit(cfg.api.max_connections, probe_sockets),
            read_timeout=cfg.api.read_timeout.total_seconds(),
        )
        await listener.start()
        self._stack.push_async_callback(listener.close)
        self.url = f"http://{host}:{listener.port}"

        outbox = asyncio.create_task(self.outbox.run(self._stop, self._outbox_poll), name="outbox")
        self._stack.push_async_callback(self._stop_outbox, outbox)
        if self.shares is not None:
            shares = asyncio.create_task(self.shares.run(self._stop), name="cluster-shares")
            self._stack.push_async_callback(_cancel, shares)
        if self._schedule:
            engine = asyncio.create_task(self.engine.run(self._stop), name="alert-engine")
            # The engine waits a tick between evaluations: cancelled, not waited for. An
            # evaluation cut off has committed all or none of its incidents and events (the
            # store's thread finishes a transaction it began); the next start evaluates again.
            self._stack.push_async_callback(_cancel, engine)
            # Integrations with an incident open from before the restart are probed first,
            # so a condition that ended while healthd was down is resolved promptly; the
            # others one interval after their stored last check, not all at once.
            self.scheduler = Scheduler(
                integrations,
                self._probe,
                jitter=cfg.defaults.jitter,
                first=set(_incident_integrations(open_incidents)),
                last_checked={i: s.last_checked for i, s in self.runner.states.items()},
                clock=self.clock,
            )
            self.scheduler.start()
            self._stack.push_async_callback(self._stop_probing)
        hooks = Hooks(added=self._added, removed=self._removed)
        self.fleet.attach(hooks)
        if cluster is not None and self.checks is not None:  # once the fleet takes changes
            cluster.watch_meta(self._meta_changed, self.checks.heard)
        self.reloader = Reloader(
            running=cfg,
            fleet=self.fleet,
            hooks=hooks,
            tokens=self._new_tokens,
            clock=self.clock,
            registry=self.registry,
        )
        self._handle_signals()
        self._ready = True
        log.info(
            "started",
            listen=self.url,
            integrations=len(integrations),
            open_incidents=len(open_incidents),
            outbox_requeued=requeued,
        )

    async def _start_ledger(self) -> None:
        """The delivery ledger, its windows rebuilt from the store. Its writer
        (`_start_delivery`) stops after the listener closes (no callback is taken then) and
        before the store does: what is queued is written first, within FLUSH_SECONDS."""
        self.delivery_instruments = DeliveryInstruments(
            self.registry, known=lambda provider, code: self.catalog.get(provider, code) is not None
        )
        self.ledger = DeliveryLedger(
            self.store,
            self.clock,
            on_counted=self._delivery_counted,
            limit=self.config.callbacks.queue_limit,
        )
        await self.ledger.load()
        limit = self.config.api.metrics_detail_limit
        self.registry.register(
            DeliveryRates(
                lambda: [d.view.integration for d in self.runner.series.detail(limit)[0]],
                lambda integration_id: self.ledger.error_rate(integration_id, self.clock.now()),
            )
        )

    def _start_delivery(self) -> None:
        """The ledger's writer and the `messages_failing` events, once the runner knows the
        integrations they are about."""
        self.messages_failing = MessagesFailing(
            store=self.store,
            settings=self.config.alerting,
            integrations=self.runner.integrations,
            catalog=self.catalog,
            clock=self.clock,
        )
        self.content_spike = ContentSpike(
            store=self.store,
            settings=self.config.alerting,
            integrations=self.runner.integrations,
            catalog=self.catalog,
            clock=self.clock,
            counts=self.ledger.counts,
        )
        writer = asyncio.create_task(self.ledger.run(self._stop), name="delivery-ledger")
        failing = asyncio.create_task(
            self.messages_failing.run(self._stop, self._alert_tick), name="messages-failing"
        )
        self._stack.push_async_callback(_cancel, failing)
        spike = asyncio.create_task(
            self.content_spike.run(self._stop, self._alert_tick), name="content-spike"
        )
        self._stack.push_async_callback(_cancel, spike)

        async def stop_writer() -> None:
            self._stop.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FLUSH_SECONDS):
                    await asyncio.shield(writer)
            await _cancel(writer)

        self._stack.push_async_callback(stop_writer)

    def _delivery_counted(self, outcome: DeliveryOutcome) -> None:
        integration = self.runner.integrations.get(outcome.integration_id)
        if integration is not None:
            self.delivery_instruments.counted(integration.provider, outcome)
            self.messages_failing.observe(outcome)
            self.content_spike.observe(outcome)

    def _callback_routes(self) -> list[web.RouteDef]:
        return CallbackRoutes(
            integrations=self.runner.integrations,
            ledger=self.ledger,
            catalog=self.catalog,
            clock=self.clock,
            config=self.config.callbacks,
            instruments=self.delivery_instruments,
        ).routes()

    async def _read_back(
        self, cluster: PostgresStore, integration_ids: list[str], *, changed: bool = False
    ) -> None:
        """Other replicas' runs, read from the database (healthd.cluster.shares, a live
        check another replica ran; `changed`: those written since the last such read):
        into the runner, and the alert engine follows what changed."""
        states, results = await cluster.load_runs(integration_ids, changed=changed)
        self.engine.reread(
            self.runner.adopt(states if changed else integration_ids, states, results)
        )

    def _state_conflict(self, integration_ids: list[str]) -> None:
        """Another replica wrote states since this one read them (PostgresStore's
        compare-and-set). Those this replica probes now it gained while the previous owner
        still wrote: they are read back (state and version), so its next run writes on top
        of the stored state; before, every later write was refused and the state froze,
        and with it the alert engine's view (a page that never came). Those it does not
        own are left: their owner's state stands. The shares are read first: a replica
        paused past its lease is refused so too, and must not take the state back."""
        shares, read_back = self.shares, self._read_others
        if shares is None or read_back is None:
            return

        async def read_owned() -> None:
            await shares.refresh()
            owned = [iid for iid in integration_ids if self._owns(iid)]
            if owned:
                await read_back(owned)

        self._reload("conflicted-states", read_owned)

    def _owns(self, integration_id: str) -> bool:
        """Whether this replica probes `integration_id` (it is in the fleet, and its share)."""
        shares = self.shares
        return integration_id in self.runner.integrations and (
            shares is None or bool(shares.mine([integration_id]))
        )

    def _live_check(self, integration: Integration) -> Awaitable[object]:
        """A live check from the API: run here, or by the owner among replicas."""
        if self.checks is None:
            return self.runner.run_once(integration.id)
        bound = probe_deadline(integration) + LIVE_SLACK_SECONDS
        return self.checks.check(integration.id, bound)

    def _meta_changed(self, key: str | None) -> None:
        """A replica set a silence or changed the registry (or the database is back, and
        either may have changed meanwhile): read it again, so a silence set through any
        replica's API holds on the one evaluating the rules, and an integration registered
        through any replica's API is probed by its owner and listed by every replica."""
        if key in (None, SILENCES_KEY):
            self._reload("silences", self.engine.silences.load)
        if key in (None, REGISTRY_KEY):
            self._reload("registry", self.fleet.sync)

    def _reload(self, what: str, read: Callable[[], Awaitable[object]]) -> None:
        async def reload() -> None:
            try:
                await read()
            except (StoreError, ConfigError) as exc:
                log.warning("reload_failed", what=what, error=str(exc))

        task = asyncio.create_task(reload(), name=f"reload-{what}")
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    @staticmethod
    async def _release_lease(lease: AlertLease) -> None:
        """A clean stop hands the alert lease on at once; a store away leaves it to expire."""
        with contextlib.suppress(StoreError):
            await lease.release()

    async def _stop_outbox(self, task: asyncio.Task[None]) -> None:
        """The outbox's whole shutdown, within one FLUSH_SECONDS budget: let the worker end
        the send it is in, then deliver what is due. A send that does not answer in time is
        abandoned (PagerDuty's runs in a daemon thread that is not waited for); its row stays
        `sending` and the next start sends it again."""
        self._stop.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FLUSH_SECONDS
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                await asyncio.shield(task)
        await _cancel(task)
        await self.outbox.flush(max(0.0, deadline - loop.time()))

    async def _probe(self, integration_ids: Sequence[str]) -> object:
        """A scheduled run, tracked so that shutdown can end it quietly.

        A run that shutdown cancels returns nothing rather than raising: APScheduler logs
        a job's CancelledError at error level with a traceback, on a clean SIGTERM.
        """
        task = asyncio.current_task()
        assert task is not None
        self._probing.add(task)
        if self.shares is not None:  # another replica probes the rest
            integration_ids = self.shares.mine(integration_ids)
        try:
            return await self.runner.run_many(integration_ids)
        except asyncio.CancelledError:
            if self._stop.is_set():
                return None
            raise
        finally:
            self._probing.discard(task)

    def _added(self, integration: Integration) -> None:
        """A registry change, stored: the runner, the API's index and the scheduler take
        it, and it is probed now rather than at its first slot."""
        self.runner.add(integration)
        self.api.indexed(integration)
        self.engine.added(integration, self.runner.states[integration.id])
        if self._read_others is not None and not self._owns(integration.id):
            # Its owner's runs so far: the read-backs since take only rows written after
            # the previous one, which may have passed them while this replica did not know it.
            self._reload(f"runs-of:{integration.id}", partial(self._read_others, [integration.id]))
        if self._schedule and not self._stop.is_set():
            self.scheduler.add(integration)
            asyncio.create_task(self._probe([integration.id]), name=f"probe-now:{integration.id}")

    def _removed(self, integration: Integration) -> None:
        if self._schedule:
            self.scheduler.remove(integration.id)
        self.runner.remove(integration.id)
        self.api.unindexed(integration.id)
        self.engine.removed(integration.id)

    async def _stop_probing(self) -> None:
        """No new runs, and the ones going are cancelled (a cut-off run records nothing;
        the next start probes again) before the session and the store they use close."""
        self.scheduler.shutdown()
        runs = list(self._probing)
        for task in runs:
            task.cancel()
        await asyncio.gather(*runs, return_exceptions=True)

    def _new_tokens(self, new: Config) -> None:
        self.api.tokens = token_table(new.api)

    def _handle_signals(self) -> None:
        """SIGINT/SIGTERM stop the daemon from the moment it is started (a supervisor may
        signal right after the `started` line), SIGHUP reads the config file again
        (`healthd.reload`; not a config given as text); the handlers go with the daemon."""
        loop = asyncio.get_running_loop()
        handlers: dict[signal.Signals, Callable[[], object]] = {
            signal.SIGINT: self._stop.set,
            signal.SIGTERM: self._stop.set,
        }
        if Path(self.config.source).is_file():
            handlers[signal.SIGHUP] = self.reloader.reload
        for sig, handler in handlers.items():
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, handler)
                self._stack.callback(loop.remove_signal_handler, sig)

    def not_ready(self) -> str | None:
        """Why `/readyz` answers 503, or None when ready."""
        if not self._ready:
            return "healthd is starting or stopping"
        if not self.store_health.healthy:
            return f"the store is failing: {self.store_health.reason}"
        if self.shares is not None and self.shares.problem is not None:
            return f"the store is failing: {self.shares.problem}"
        return None

    def stop(self) -> None:
        self._stop.set()

    async def wait(self) -> None:
        """Run until SIGINT/SIGTERM or `stop()`."""
        await self._stop.wait()


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel `task` and wait until it has ended."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _incident_integrations(incidents: list[Incident]) -> list[str]:
    """The integrations an incident is about: one (`integration`) or several (`integrations`)."""
    ids: set[str] = set()
    for incident in incidents:
        one = incident.details.get("integration")
        if isinstance(one, str):
            ids.add(one)
        ids.update(str(i) for i in incident.details.get("integrations", []))
    return sorted(ids)

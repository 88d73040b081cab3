"""One sweep of every integration, outside the daemon: what `healthd check` runs.

It goes through the same Runner as the daemon (same deadlines, same catalogue), with a
memory store, so a check from a shell never touches the daemon's state or pages anyone.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from healthd.catalog import load as load_catalog
from healthd.clock import SystemClock
from healthd.config import Config
from healthd.http import make_session
from healthd.metrics import Instruments
from healthd.model import ProbeResult
from healthd.runner import Runner
from healthd.store import MemoryStore


async def sweep(cfg: Config) -> list[ProbeResult]:
    store = MemoryStore()
    await store.open()
    session = make_session(cfg.defaults.concurrency)
    try:
        runner = Runner(
            integrations=cfg.integrations,
            store=store,
            session=session,
            catalog=load_catalog(),
            clock=SystemClock(),
            instruments=Instruments(CollectorRegistry()),
            concurrency=cfg.defaults.concurrency,
        )
        return await runner.run_many([i.id for i in cfg.integrations])
    finally:
        await session.close()
        await store.close()

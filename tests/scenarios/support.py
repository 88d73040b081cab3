"""What the scenario tests share about driving the in-process daemon."""

from __future__ import annotations

import asyncio

from healthd.daemon import Daemon


async def delivered(d: Daemon, timeout: float = 15.0) -> None:
    """Run the outbox until nothing is pending on any channel (bounded by `timeout`)."""
    async with asyncio.timeout(timeout):
        while True:
            await d.outbox.run_once()
            await d.engine.refresh_view()
            if not any(d.engine.alert_view().pending.values()):
                return
            await asyncio.sleep(0.05)

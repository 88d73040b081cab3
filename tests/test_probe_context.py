"""`ProbeContext.with_timeout` is `dataclasses.replace(ctx, timeout=...)`, built by hand."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any, cast

import aiohttp

from healthd.catalog import load as load_catalog
from healthd.clock import FakeClock
from healthd.http import SharedAnswers
from healthd.interfaces import ProbeContext


def test_a_context_with_another_timeout_carries_over_every_other_field() -> None:
    """Every field differs from its default, so one left out by `with_timeout` shows."""
    clock = FakeClock(datetime(2026, 12, 2, tzinfo=UTC))
    ctx = ProbeContext(
        session=cast(aiohttp.ClientSession, object()),
        clock=clock,
        catalog=load_catalog(),
        timeout=5.0,
        last_checked=clock.now(),
        shared=SharedAnswers(clock),
        deliveries=cast(Any, object()),
    )
    assert all(
        getattr(ctx, f.name) is not f.default
        for f in dataclasses.fields(ctx)
        if f.default is not dataclasses.MISSING
    )
    assert ctx.with_timeout(4.5) == dataclasses.replace(ctx, timeout=4.5)

"""A probe's dependent steps, in order, under the probe's one deadline.

The email probes check things that depend on each other (no sender check without a
valid key, no mailbox check without an access token). `Halt` ends the steps early with
the finding that says why. The steps share one deadline rather than each request getting
the whole of `ctx.timeout`: when a late step hangs, the earlier steps' findings survive
and the late one is reported as a timeout of its own check.

The runner cuts a probe off at exactly `ctx.timeout` and then keeps none of its findings
(`healthd.probe_timeout`), so a probe's own work must end a little before that:
`within_deadline` gives it the first DEADLINE_SHARE of the time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TypeVar

from healthd.model import Finding, ProbeContext
from probes._http import TransportFailure, transport_finding

T = TypeVar("T")

DEADLINE_SHARE = 0.9


def within_deadline(ctx: ProbeContext) -> ProbeContext:
    """`ctx` with its timeout cut to DEADLINE_SHARE, for everything the probe runs."""
    return replace(ctx, timeout=ctx.timeout * DEADLINE_SHARE)


class Halt(Exception):
    """Stops the remaining steps; carries the finding that explains why."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.code)
        self.finding = finding


class Steps:
    """Collects findings from steps run by `run`; `step` names the check under way.

    `ctx` should already be `within_deadline`: `run` bounds all steps by its timeout.
    """

    def __init__(self, ctx: ProbeContext, provider: str) -> None:
        self.ctx = ctx
        self.provider = provider
        self.findings: list[Finding] = []
        self._check = "reachability"

    async def step(self, check: str, work: Awaitable[T]) -> T:
        self._check = check
        return await work

    async def run(self, body: Callable[[], Awaitable[None]]) -> list[Finding]:
        try:
            async with asyncio.timeout(self.ctx.timeout):
                await body()
        except Halt as halt:
            self.findings.append(halt.finding)
        except TimeoutError:
            failure = TransportFailure("timeout", f"no answer within {self.ctx.timeout:g}s")
            self.findings.append(
                transport_finding(self.ctx, self.provider, failure, check=self._check)
            )
        return self.findings

"""A probe's dependent steps, in order, under the probe's one deadline.

The email probes check things that depend on each other (no sender check without a
valid key, no mailbox check without an access token). `Halt` ends the steps early with
the finding that says why. The steps share one deadline rather than each request getting
the whole of `ctx.timeout`: when a late step hangs, the earlier steps' findings survive
and the late one is reported as a timeout of its own check.

`ctx.timeout` is already the probe's share of the runner's deadline (`healthd.probing`),
so these findings come back before the runner cuts the run off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from healthd.interfaces import Probe, ProbeContext
from healthd.model import Finding
from probes._http import TransportFailure, transport_finding

T = TypeVar("T")


class Halt(Exception):
    """Stops the remaining steps; carries the finding that explains why."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.code)
        self.finding = finding


class Steps:
    """Collects findings from steps run by `run`; `step` names the check under way.

    `run` bounds all steps by `ctx.timeout`.
    """

    def __init__(self, ctx: ProbeContext, probe: type[Probe[Any]]) -> None:
        self.ctx = ctx
        self.probe = probe
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
                transport_finding(self.ctx, self.probe, failure, check=self._check)
            )
        return self.findings

"""What every provider in the simulator shares: scenario switching and injected latency.

A provider simulator is a class with a `name`, the set of `scenarios` it knows, and
`routes()` that speak the provider's real paths and bodies. Scenarios are set per target
(an account SID, an API key, a bridge name) or for `*` (every target without its own), so
one simulator process can hold a healthy tenant beside a broken one.

Two scenarios exist for every provider and are handled here, not by each simulator:
`slow` (answer after `delay` seconds) and `hanging` (never answer; the client's timeout
must cut it off). `latency` (seconds, default 0) is added to every answer of that target;
benchmarks use it to model a real provider's round trip.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aiohttp import web

ANY = "*"
COMMON_SCENARIOS = frozenset({"ok", "slow", "hanging"})


@dataclass(slots=True)
class Scenario:
    name: str = "ok"
    params: dict[str, Any] = field(default_factory=dict)


class UnknownScenario(ValueError):
    pass


def drop_connection(request: web.Request) -> web.Response:
    """Close the connection without an HTTP answer, as a dead host behind a proxy looks.

    The client sees the server disconnect (aiohttp: `ServerDisconnectedError`). Return the
    result from the handler; aiohttp writes nothing to the closed transport.
    """
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=500)


class ProviderSim:
    """Base class for one provider's simulator. Subclasses add routes and scenarios."""

    name: ClassVar[str]
    scenarios: ClassVar[frozenset[str]]
    # Scenario params that are credentials (a bridge password): masked in describe().
    secret_params: ClassVar[frozenset[str]] = frozenset()

    def __init__(self) -> None:
        self._scenarios: dict[str, Scenario] = {}
        self.requests = 0

    def set_scenario(
        self, scenario: str, target: str = ANY, params: Mapping[str, Any] | None = None
    ) -> None:
        if scenario not in self.scenarios | COMMON_SCENARIOS:
            known = ", ".join(sorted(self.scenarios | COMMON_SCENARIOS))
            raise UnknownScenario(f"{self.name} has no scenario {scenario!r}; known: {known}")
        self._scenarios[target] = Scenario(scenario, dict(params or {}))

    def scenario_for(self, target: str) -> Scenario:
        return self._scenarios.get(target) or self._scenarios.get(ANY) or Scenario()

    def reset(self) -> None:
        self._scenarios.clear()
        self.requests = 0

    def describe(self) -> dict[str, Any]:
        return {
            "provider": self.name,
            "scenarios": sorted(self.scenarios | COMMON_SCENARIOS),
            "active": {
                t: {"scenario": s.name, **self._shown(s.params)} for t, s in self._scenarios.items()
            },
            "requests": self.requests,
        }

    def _shown(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {k: "***" if k in self.secret_params else v for k, v in params.items()}

    async def delay(self, target: str) -> Scenario:
        """Apply the target's latency, `slow` or `hanging`; return its scenario for the rest."""
        self.requests += 1
        sc = self.scenario_for(target)
        latency = float(sc.params.get("latency", 0))
        if sc.name == "hanging":
            # Longer than any probe timeout; the client is expected to give up first.
            await asyncio.sleep(float(sc.params.get("delay", 3600)))
        elif sc.name == "slow":
            latency += float(sc.params.get("delay", 2.0))
        if latency > 0:
            await asyncio.sleep(latency)
        return sc

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

"""The provider simulator: real loopback HTTP servers speaking each provider's API.

`Simulator` (async) and `SimulatorThread` (sync, background thread) serve every simulator
registered under the `healthd.simulators` entry points; `SimClient` drives scenarios
through the control API. `python -m healthd.sim` runs it standalone.
"""

from __future__ import annotations

from healthd.sim.app import RouteConflict, Simulator, SimulatorSetupError, SimulatorThread
from healthd.sim.base import ANY, ProviderSim, Scenario, UnknownScenario
from healthd.sim.client import SimClient, SimClientError

__all__ = [
    "ANY",
    "ProviderSim",
    "RouteConflict",
    "Scenario",
    "SimClient",
    "SimClientError",
    "Simulator",
    "SimulatorSetupError",
    "SimulatorThread",
    "UnknownScenario",
]

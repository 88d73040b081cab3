"""healthd: health checks and alerting for a CRM's messaging integrations.

The public surface is what a probe author or an embedding program needs: the value types
a probe returns, the Probe protocol it implements, and the Daemon that runs it all.
"""

from __future__ import annotations

__version__ = "0.1.0"

from healthd.errors import ConfigError, HealthdError  # noqa: E402
from healthd.interfaces import Notifier, Probe, ProbeContext, Store  # noqa: E402
from healthd.model import (  # noqa: E402
    AlertEvent,
    Category,
    Finding,
    Integration,
    IntegrationState,
    ProbeResult,
    Status,
    Transition,
)

__all__ = [
    "AlertEvent",
    "Category",
    "ConfigError",
    "Finding",
    "HealthdError",
    "Integration",
    "IntegrationState",
    "Notifier",
    "Probe",
    "ProbeContext",
    "ProbeResult",
    "Status",
    "Store",
    "Transition",
    "__version__",
]

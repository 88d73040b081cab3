"""healthd: health checks and alerting for a CRM's messaging integrations.

The public surface is what a probe author or an embedding program needs: the value types
a probe returns and the protocols it implements. The Daemon that runs it all is
`healthd.daemon.Daemon`, not re-exported here: every `import healthd.<module>` runs this
file first, so it imports only the bottom layers. Nothing inside healthd imports this
package for a name (tests/test_layout.py): `__version__` comes from `healthd.version`.
"""

from __future__ import annotations

from healthd.errors import ConfigError, HealthdError
from healthd.interfaces import Notifier, Probe, ProbeContext, Store
from healthd.model import (
    AlertEvent,
    Category,
    Finding,
    Integration,
    IntegrationState,
    ProbeResult,
    Status,
    Transition,
)
from healthd.version import __version__

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

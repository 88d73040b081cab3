"""healthd: health checks and alerting for a CRM's messaging integrations."""

from __future__ import annotations

__version__ = "0.1.0"

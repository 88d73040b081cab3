"""`tenant_failing` (`healthd/tenant/<id>`): a tenant-owned integration that is failing,
unreachable or degraded, for the tenant's own webhook when one is configured.

Tenant integrations never page on-call unless marked `page: true`; those page through
`integration_failing` instead of going to the webhook. Degraded goes out as a warning.
"""

from __future__ import annotations

from healthd.alerts.channels import Audience
from healthd.alerts.rules._base import (
    Condition,
    IntegrationRule,
    RuleSettings,
    Scene,
    View,
    status_condition,
)
from healthd.model import Severity, Status


class TenantFailingSettings(RuleSettings):
    """Posts a tenant's own failing integrations to its webhook (never pages on-call)."""


class TenantFailing(IntegrationRule[TenantFailingSettings]):
    name = "tenant_failing"
    settings = TenantFailingSettings

    def condition_of(
        self, view: View, scene: Scene, settings: TenantFailingSettings
    ) -> Condition | None:
        integration, status = view.integration, view.inputs.status
        if integration.tenant not in scene.webhook_tenants or integration.pages:
            return None
        if not (status.is_bad or status is Status.DEGRADED):
            return None
        findings = view.bad_findings or tuple(
            f for f in view.inputs.findings if f.status is Status.DEGRADED
        )
        return status_condition(
            self.name,
            view,
            findings,
            dedup_key=f"healthd/tenant/{integration.id}",
            audience=Audience.TENANT,
            severity=Severity.WARNING if status is Status.DEGRADED else Severity.ERROR,
        )

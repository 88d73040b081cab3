"""`integration_failing` (`healthd/integration_failing/<id>`): an integration that pages
(`Integration.pages`) whose effective status is failing or unreachable.

An unreachable integration that keeps an unreachable timer (the bridge) belongs to
`bridge_unreachable`, with its own `page_after`; a bridge that answers but fails (iMessage
signed out) pages here. Degraded never pages. Credential and sender problems page as
critical, the rest as error.
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
from healthd.model import Category, Severity, Status

_CREDENTIAL_CATEGORIES = (Category.ACCOUNT, Category.SENDER_CONFIG)


class IntegrationFailingSettings(RuleSettings):
    """Pages on-call for each paging integration that fails (no settings but `enabled`)."""


class IntegrationFailing(IntegrationRule[IntegrationFailingSettings]):
    name = "integration_failing"
    settings = IntegrationFailingSettings

    def condition_of(
        self, view: View, scene: Scene, settings: IntegrationFailingSettings
    ) -> Condition | None:
        integration, status = view.integration, view.inputs.status
        if not integration.pages or not status.is_bad:
            return None
        if integration.tracks_unreachable and status is Status.UNREACHABLE:
            return None  # bridge_unreachable's, with its own page_after
        bad = view.bad_findings
        credential = any(f.category in _CREDENTIAL_CATEGORIES for f in bad)
        return status_condition(
            self.name,
            view,
            bad,
            dedup_key=f"healthd/integration_failing/{integration.id}",
            audience=Audience.ON_CALL,
            severity=Severity.CRITICAL if credential else Severity.ERROR,
        )

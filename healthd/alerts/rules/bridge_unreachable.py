"""`bridge_unreachable` (`healthd/bridge_unreachable/<id>`): an integration that keeps an
unreachable timer (`Integration.tracks_unreachable`: the iMessage bridge) whose
`unreachable_since` is older than its `thresholds.page_after`.

The timer is the state machine's: short answers in the middle of an outage do not restart
it as long as the state machine keeps `unreachable_since`. A bridge that answered its
latest probe while the timer still runs is recovering: it keeps an open page open but
triggers none (a page held back until then would resolve one probe later).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import timedelta

from healthd.alerts.channels import Audience
from healthd.alerts.rules._base import (
    Condition,
    Rule,
    RuleSettings,
    Scene,
    View,
    finding_details,
    format_duration,
    rule_inputs,
)
from healthd.durations import Duration
from healthd.model import PLATFORM_TENANT, Integration, IntegrationState, Severity


class BridgeUnreachableSettings(RuleSettings):
    # Also the default `page_after` of every integration that does not set its own.
    page_after: Duration = timedelta(minutes=10)


class BridgeUnreachable(Rule[BridgeUnreachableSettings]):
    name = "bridge_unreachable"
    settings = BridgeUnreachableSettings

    def conditions(self, scene: Scene, settings: BridgeUnreachableSettings) -> Iterator[Condition]:
        no_fallback = _without_sms_fallback(scene.views)
        for view in scene.views:
            integration, since = view.integration, view.inputs.unreachable_since
            if not integration.tracks_unreachable or since is None:
                continue
            down_for = scene.now - since
            if down_for <= integration.thresholds.page_after:
                continue
            # The id, as on-call sees it elsewhere: "iMessage bridge unreachable for 12m
            # (bridge-dc1)".
            yield Condition(
                rule=self.name,
                dedup_key=f"healthd/bridge_unreachable/{integration.id}",
                audience=Audience.ON_CALL,
                summary=f"iMessage bridge unreachable for {format_duration(down_for)} "
                f"({integration.id})",
                severity=Severity.CRITICAL,
                integration=integration.id,
                provider=integration.provider,
                tenant=integration.tenant,
                details={
                    "integration": integration.id,
                    "unreachable_since": since.isoformat(),
                    "unreachable_seconds": int(down_for.total_seconds()),
                    "findings": finding_details(view),
                    "tenants_without_sms_fallback": no_fallback,
                },
                view=view,
                recovering=view.answering,
            )


def tenants_without_sms_fallback(
    integrations: Mapping[str, Integration], states: Mapping[str, IntegrationState]
) -> list[str]:
    """Tenants with no connected SMS fallback (`Integration.sms_fallback`: Twilio),
    configured and not failing.

    Seed 000: while the bridge is down, these tenants' iMessages sit in the queue instead
    of falling back to SMS. The bridge page lists them; the status API can too.
    """
    return _without_sms_fallback(
        View(
            integration=integration,
            inputs=rule_inputs(states.get(iid) or IntegrationState(integration_id=iid), None),
        )
        for iid, integration in integrations.items()
    )


def _without_sms_fallback(views: Iterable[View]) -> list[str]:
    tenants: set[str] = set()
    covered: set[str] = set()
    for view in views:
        tenant = view.integration.tenant
        if tenant != PLATFORM_TENANT:
            tenants.add(tenant)
        if view.integration.sms_fallback and not view.failing:
            covered.add(tenant)
    return sorted(tenants - covered)

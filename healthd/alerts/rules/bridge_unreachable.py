"""`bridge_unreachable` (`healthd/bridge_unreachable/<id>`): an integration that keeps an
unreachable timer (`Integration.tracks_unreachable`: the iMessage bridge) whose
`unreachable_since` is older than its `thresholds.page_after`.

The timer is the state machine's: short answers in the middle of an outage do not restart
it as long as the state machine keeps `unreachable_since`. A bridge that answered its
latest probe while the timer still runs is recovering: it keeps an open page open but
triggers none (a page held back until then would resolve one probe later).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from healthd.alerts.channels import Audience
from healthd.alerts.rules._base import (
    Condition,
    IntegrationRule,
    RuleSettings,
    Scene,
    View,
    finding_details,
    format_duration,
    integration_condition,
)
from healthd.durations import Duration
from healthd.model import Severity


class BridgeUnreachableSettings(RuleSettings):
    # Also the default `page_after` of every integration that does not set its own.
    page_after: Duration = timedelta(minutes=10)


# Pages once down for *more* than page_after: the first instant that is true.
_JUST_AFTER = timedelta(microseconds=1)


class BridgeUnreachable(IntegrationRule[BridgeUnreachableSettings]):
    name = "bridge_unreachable"
    settings = BridgeUnreachableSettings

    def edges_of(
        self, view: View, scene: Scene, settings: BridgeUnreachableSettings
    ) -> Iterator[datetime]:
        since = view.inputs.unreachable_since
        if view.integration.tracks_unreachable and since is not None:
            edge = since + view.integration.thresholds.page_after + _JUST_AFTER
            if edge > scene.now:
                yield edge

    def condition_of(
        self, view: View, scene: Scene, settings: BridgeUnreachableSettings
    ) -> Condition | None:
        integration, since = view.integration, view.inputs.unreachable_since
        if not integration.tracks_unreachable or since is None:
            return None
        down_for = scene.now - since
        if down_for <= integration.thresholds.page_after:
            return None
        # The id, as on-call sees it elsewhere: "iMessage bridge unreachable for 12m
        # (bridge-dc1)".
        return integration_condition(
            self.name,
            view,
            dedup_key=f"healthd/bridge_unreachable/{integration.id}",
            audience=Audience.ON_CALL,
            summary=f"iMessage bridge unreachable for {format_duration(down_for)} "
            f"({integration.id})",
            severity=Severity.CRITICAL,
            details={
                "integration": integration.id,
                "unreachable_since": since.isoformat(),
                "unreachable_seconds": int(down_for.total_seconds()),
                "findings": finding_details(view),
                "tenants_without_sms_fallback": list(scene.without_sms_fallback),
            },
            recovering=view.answering,
        )

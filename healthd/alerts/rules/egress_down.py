"""`egress_down` (`healthd/egress_down`): integrations of at least `min_providers`
providers fail with network errors and no integration succeeded in its latest run: the
problem is healthd's own network.

While it holds it suppresses `provider_outage`, `bridge_unreachable` and the network
failures of the per-integration rules (`integration_failing`, `tenant_failing`). Once open
it holds while `min_providers` providers still fail with network errors or are
recovering, so it resolves when the state machines call the network back, not at the
first success.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pydantic import Field

from healthd.alerts.channels import Audience
from healthd.alerts.rules._base import TOP_CODES, Condition, Lazy, Rule, RuleSettings, Scene
from healthd.alerts.rules.bridge_unreachable import BridgeUnreachable
from healthd.alerts.rules.provider_outage import ProviderOutage
from healthd.model import Severity

_KEY = "healthd/egress_down"


class EgressDownSettings(RuleSettings):
    min_providers: int = Field(default=2, ge=1)


class EgressDown(Rule[EgressDownSettings]):
    name = "egress_down"
    settings = EgressDownSettings

    def conditions(self, scene: Scene, settings: EgressDownSettings) -> Iterator[Condition]:
        """Triggers only when nothing succeeded; once open, holds while integrations of
        `min_providers` providers still fail with network errors. When the network comes
        back, the first success must not resolve it and release a page for every
        integration whose state machine has not yet seen its M good probes."""
        is_down = _KEY in scene.open_keys
        if not is_down and scene.any_succeeded:
            return
        tallies = scene.fleet.tallies
        providers = sorted(
            p for p, t in tallies.items() if t.network or (is_down and t.network_recovering)
        )
        if len(providers) < settings.min_providers:
            return
        count = sum(t.network + (t.network_recovering if is_down else 0) for t in tallies.values())

        def details() -> Mapping[str, Any]:
            failing = [v for v in scene.views if v.network_failure or (is_down and v.recovering)]
            codes = Counter(f.code for v in failing for f in v.bad_findings if f.network_error)
            return {
                "providers": providers,
                "integrations_failing": count,
                "top_codes": dict(codes.most_common(TOP_CODES)),
            }

        yield Condition(
            rule=self.name,
            dedup_key=_KEY,
            audience=Audience.ON_CALL,
            summary="healthd cannot reach any provider: its own egress or the datacenter's network",
            severity=Severity.CRITICAL,
            details=Lazy(details),
        )

    def suppresses(self, held: Sequence[Condition], condition: Condition) -> bool:
        """Outages and bridge pages, whatever their findings, and any condition about one
        integration failing with network errors: none of them is the provider's doing."""
        if condition.rule in (ProviderOutage.name, BridgeUnreachable.name):
            return True
        return condition.view is not None and condition.view.network_failure

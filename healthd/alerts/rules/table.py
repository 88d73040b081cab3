"""The rule table: every alert rule, in suppression order.

A rule may hold back (`Rule.suppresses`) only the conditions of rules after it, so the
order is declared here once: store_failing (healthd's own store; it holds back nothing)
first, then egress_down (healthd's own network) before provider_outage
(one provider's side) before the per-integration rules. A new rule is its module and one
row here; `healthd.alerts.settings` builds the `alerting.rules` block from this table.
"""

from __future__ import annotations

from typing import Any

from healthd.alerts.rules._base import Rule
from healthd.alerts.rules.bridge_unreachable import BridgeUnreachable
from healthd.alerts.rules.egress_down import EgressDown
from healthd.alerts.rules.integration_failing import IntegrationFailing
from healthd.alerts.rules.provider_outage import ProviderOutage
from healthd.alerts.rules.store_failing import StoreFailing
from healthd.alerts.rules.tenant_failing import TenantFailing

RULES: tuple[Rule[Any], ...] = (
    StoreFailing(),
    EgressDown(),
    ProviderOutage(),
    BridgeUnreachable(),
    IntegrationFailing(),
    TenantFailing(),
)

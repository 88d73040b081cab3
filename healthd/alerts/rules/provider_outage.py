"""`provider_outage` (`healthd/provider_outage/<provider>`): one provider is failing, as
its integrations see it, in a fleet of any size.

"A provider starts failing" is provider-side evidence (5xx, timeouts, the provider's own
status page: `Category.PROVIDER` findings) across the provider's integrations; a tenant's
own mistake (a revoked key, an unverified sender) is never evidence. The outage holds when
either

- the integrations failing with provider-side findings (`affected`) reach
  `needed(witnesses)` = the larger of `min(min_count, witnesses)` and
  `ceil(min_share * witnesses)`, where the witnesses are the provider's integrations that
  can tell whether the provider works: all of them but those failing for their own reasons
  only (a revoked key says nothing about the provider's servers). So the only integration
  of a provider failing with 5xx for N runs in a row (the state machine's debounce) is the
  provider failing; with three witnesses it takes all three; with 1,000 it takes 300, and
  one integration's 5xx is noise; or
- one failing integration carries a failing status-page finding (`STATUS_PAGE_CHECK`: a
  major outage of a component it depends on): the provider says so itself.

A lone paging integration (`Integration.pages`) that is the only one affected pages
through `integration_failing` instead, with its own findings: an outage page would say the
same thing with less.

While it holds, that provider's provider-category `integration_failing` triggers are
suppressed: one page for the provider, not one per integration. Once open it also holds
while a paging integration it suppresses is still failing that way (holding back), so the
outage's resolve never releases the page it held back, and members on their way back
(recovering) still count, so one good answer mid-outage neither resolves it nor, at the
next 5xx, pages it again.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pydantic import Field

from healthd.alerts.channels import Audience
from healthd.alerts.rules._base import (
    Condition,
    Lazy,
    Rule,
    RuleSettings,
    Scene,
    Tally,
)
from healthd.alerts.rules.integration_failing import IntegrationFailing
from healthd.model import Severity


class ProviderOutageSettings(RuleSettings):
    min_share: float = Field(default=0.3, gt=0, le=1)
    min_count: int = Field(default=3, ge=1)


def needed(witnesses: int, settings: ProviderOutageSettings) -> int:
    """How many of `witnesses` must fail with provider-side findings for an outage: the
    share of a large fleet, all of a fleet smaller than `min_count`, never fewer than one.
    The share is rounded up (with a hair of slack, so 0.3 of 10 is 3, not 4)."""
    share = math.ceil(settings.min_share * witnesses - 1e-9)
    return max(min(settings.min_count, witnesses), share, 1)


class ProviderOutage(Rule[ProviderOutageSettings]):
    """Reads each provider's `Tally` (the witnesses are the provider's integrations that
    are `View.witness`; the quiet ones, not in the scene, all are), so an evaluation costs
    O(1) per provider however many members fail."""

    name = "provider_outage"
    settings = ProviderOutageSettings

    def conditions(self, scene: Scene, settings: ProviderOutageSettings) -> Iterator[Condition]:
        """Once open, an outage also holds while it still holds back a page (a paging
        integration of the provider failing with provider errors): as a provider recovers,
        its integrations come back one by one, and resolving the outage while the
        platform's own integration is still failing would fire the very page it was
        holding back."""
        for provider, tally in sorted(scene.fleet.tallies.items()):
            key = f"healthd/provider_outage/{provider}"
            is_open = key in scene.open_keys
            # Once open, members still on their way back count: one good answer in the
            # middle of an outage must not resolve the page and trigger it again on the
            # next 5xx.
            held = tally.affected + (tally.recovering if is_open else 0)
            total = scene.members[provider]
            witnesses = total - tally.non_witnesses
            above = held > 0 and (held >= needed(witnesses, settings) or tally.status_pages > 0)
            # Not yet open, the one held is the one affected.
            lone_page = not is_open and held == 1 and tally.affected_paging == 1
            holding_back = is_open and tally.affected_paging > 0
            if not ((above and not lone_page) or holding_back):
                continue
            yield self._condition(scene, key, provider, tally, total)

    def _condition(
        self, scene: Scene, key: str, provider: str, tally: Tally, total: int
    ) -> Condition:
        top, affected_n = tally.top_codes(), tally.affected

        def members() -> Mapping[str, Any]:
            affected = [
                v.integration
                for v in scene.views
                if v.provider_failure and v.integration.provider == provider
            ]
            return {
                "affected": affected_n,
                "total": total,
                "share": round(affected_n / total, 3),
                "top_codes": dict(top),
                "tenants": sorted({i.tenant for i in affected}),
                "integrations": [i.id for i in affected],
            }

        return Condition(
            rule=self.name,
            dedup_key=key,
            audience=Audience.ON_CALL,
            summary=f"{provider} outage: {affected_n} of {total} integrations "
            f"failing with provider errors ({', '.join(code for code, _ in top)})",
            severity=Severity.CRITICAL,
            provider=provider,
            details=Lazy(members),
        )

    def suppresses(self, held: Sequence[Condition], condition: Condition) -> bool:
        """The provider-category `integration_failing` pages of a provider in an outage."""
        return (
            condition.rule == IntegrationFailing.name
            and condition.view is not None
            and condition.view.provider_failure
            and condition.provider in {c.provider for c in held}
        )

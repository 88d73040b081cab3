"""`provider_outage` (`healthd/provider_outage/<provider>`): at least `min_share` and at
least `min_count` of one provider's integrations fail with provider-category findings.

While it holds, that provider's provider-category `integration_failing` triggers are
suppressed: one page for the provider, not one per integration. Once open it also holds
while a paging integration it suppresses is still failing that way (holding back), so the
outage's resolve never releases the page it held back, and members on their way back
(recovering) still count, so one good answer mid-outage neither resolves it nor, at the
next 5xx, pages it again.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence

from pydantic import Field

from healthd.alerts.channels import Audience
from healthd.alerts.rules._base import TOP_CODES, Condition, Rule, RuleSettings, Scene, View
from healthd.alerts.rules.integration_failing import IntegrationFailing
from healthd.model import Category, Severity


class ProviderOutageSettings(RuleSettings):
    min_share: float = Field(default=0.3, gt=0, le=1)
    min_count: int = Field(default=3, ge=1)


class ProviderOutage(Rule[ProviderOutageSettings]):
    name = "provider_outage"
    settings = ProviderOutageSettings

    def conditions(self, scene: Scene, settings: ProviderOutageSettings) -> Iterator[Condition]:
        """Once open, an outage also holds while it still holds back a page (a paging
        integration of the provider failing with provider errors): as a provider recovers,
        its integrations come back one by one, and resolving the outage while the
        platform's own integration is still failing would fire the very page it was
        holding back."""
        by_provider: dict[str, list[View]] = defaultdict(list)
        for view in scene.views:
            by_provider[view.integration.provider].append(view)
        for provider, members in sorted(by_provider.items()):
            affected = [v for v in members if v.provider_failure]
            key = f"healthd/provider_outage/{provider}"
            is_open = key in scene.open_keys
            # Once open, members still on their way back count: one good answer in the
            # middle of an outage must not resolve the page and trigger it again on the
            # next 5xx.
            held = (
                [v for v in members if v.provider_failure or v.recovering] if is_open else affected
            )
            above = len(held) >= max(settings.min_count, settings.min_share * len(members))
            holding_back = is_open and any(v.integration.pages for v in affected)
            if not (above or holding_back):
                continue
            codes = Counter(
                f.code for v in affected for f in v.bad_findings if f.category is Category.PROVIDER
            )
            top = [code for code, _ in codes.most_common(TOP_CODES)]
            yield Condition(
                rule=self.name,
                dedup_key=key,
                audience=Audience.ON_CALL,
                summary=f"{provider} outage: {len(affected)} of {len(members)} integrations "
                f"failing with provider errors ({', '.join(top)})",
                severity=Severity.CRITICAL,
                provider=provider,
                details={
                    "affected": len(affected),
                    "total": len(members),
                    "share": round(len(affected) / len(members), 3),
                    "top_codes": dict(codes.most_common(TOP_CODES)),
                    "tenants": sorted({v.integration.tenant for v in affected}),
                    "integrations": [v.integration.id for v in affected],
                },
            )

    def suppresses(self, held: Sequence[Condition], condition: Condition) -> bool:
        """The provider-category `integration_failing` pages of a provider in an outage."""
        return (
            condition.rule == IntegrationFailing.name
            and condition.view is not None
            and condition.view.provider_failure
            and condition.provider in {c.provider for c in held}
        )

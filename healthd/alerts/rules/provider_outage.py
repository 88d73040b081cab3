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
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence

from pydantic import Field

from healthd.alerts.channels import Audience
from healthd.alerts.rules._base import TOP_CODES, Condition, Rule, RuleSettings, Scene, View
from healthd.alerts.rules.integration_failing import IntegrationFailing
from healthd.model import Category, Severity, Status

# The check under which a probe reports the provider's status page (`probes._statuspage`).
STATUS_PAGE_CHECK = "platform"


class ProviderOutageSettings(RuleSettings):
    min_share: float = Field(default=0.3, gt=0, le=1)
    min_count: int = Field(default=3, ge=1)


def needed(witnesses: int, settings: ProviderOutageSettings) -> int:
    """How many of `witnesses` must fail with provider-side findings for an outage: the
    share of a large fleet, all of a fleet smaller than `min_count`, never fewer than one.
    The share is rounded up (with a hair of slack, so 0.3 of 10 is 3, not 4)."""
    share = math.ceil(settings.min_share * witnesses - 1e-9)
    return max(min(settings.min_count, witnesses), share, 1)


def _witness(view: View) -> bool:
    """Whether `view` can tell if its provider works: anything but failing for its own
    reasons only (account, sender configuration, ...); one on its way back reached it."""
    return not view.failing or view.provider_failure or view.recovering


def _status_page_says_so(view: View) -> bool:
    return view.provider_failure and any(
        f.check == STATUS_PAGE_CHECK
        and f.status is Status.FAILING
        and f.category is Category.PROVIDER
        for f in view.bad_findings
    )


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
            # The quiet members (not in the scene) are all witnesses.
            total = scene.members[provider]
            witnesses = total - sum(1 for v in members if not _witness(v))
            above = bool(held) and (
                len(held) >= needed(witnesses, settings) or any(map(_status_page_says_so, held))
            )
            lone_page = not is_open and len(held) == 1 and held[0].integration.pages
            holding_back = is_open and any(v.integration.pages for v in affected)
            if not ((above and not lone_page) or holding_back):
                continue
            yield self._condition(key, provider, affected, total)

    def _condition(self, key: str, provider: str, affected: list[View], total: int) -> Condition:
        codes = Counter(
            f.code for v in affected for f in v.bad_findings if f.category is Category.PROVIDER
        )
        top = [code for code, _ in codes.most_common(TOP_CODES)]
        return Condition(
            rule=self.name,
            dedup_key=key,
            audience=Audience.ON_CALL,
            summary=f"{provider} outage: {len(affected)} of {total} integrations "
            f"failing with provider errors ({', '.join(top)})",
            severity=Severity.CRITICAL,
            provider=provider,
            details={
                "affected": len(affected),
                "total": total,
                "share": round(len(affected) / total, 3),
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

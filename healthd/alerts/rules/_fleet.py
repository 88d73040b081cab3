"""The fleet as the rules need it: the few integrations that can raise or hold a condition,
and counters that stand for all the others.

At 100,000 integrations almost all are quiet: not failing, not degraded, no unreachable
timer running. A quiet integration triggers nothing and holds nothing open; what the rules
need of it is a count (a provider's members and witnesses, whether anything succeeded,
which tenants still have an SMS fallback). So a `Fleet` keeps the views of the notable
integrations only, and per-integration contributions to those counts, and `update` moves
one integration between them in O(1). The alert engine keeps one up to date from each
run's change; `Fleet.of` builds one from scratch, which is what `evaluate()` does, so the
two must agree (tests/alerts/test_incremental.py checks they do).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from healthd.alerts.rules._base import RuleInputs, View, rule_inputs
from healthd.model import PLATFORM_TENANT, Integration, IntegrationState, ProbeResult, Status

_SUCCEEDED = 1  # its latest run succeeded (egress_down: the network works)
_COVERS = 2  # an SMS fallback of its tenant that is not failing (bridge_unreachable)


def notable(inputs: RuleInputs) -> bool:
    """Whether an integration can raise or hold a condition of any rule: failing
    (integration, tenant, provider and egress rules), degraded (tenant_failing) or with
    an unreachable timer running (bridge_unreachable). A quiet one only counts."""
    return (
        inputs.status.is_bad
        or inputs.status is Status.DEGRADED
        or inputs.unreachable_since is not None
    )


def _flags(integration: Integration, inputs: RuleInputs) -> int:
    flags = 0
    if inputs.result_status in (Status.OK, Status.DEGRADED):
        flags |= _SUCCEEDED
    if integration.sms_fallback and not inputs.status.is_bad:
        flags |= _COVERS
    return flags


class Fleet:
    """Notable views by integration id, plus the counts the rules read of everyone."""

    def __init__(self, integrations: Mapping[str, Integration]) -> None:
        self.integrations = dict(integrations)
        self.members: Counter[str] = Counter(i.provider for i in self.integrations.values())
        # Tenants (not the platform) with no SMS fallback that is not failing: all at first.
        self._uncovered = {
            i.tenant for i in self.integrations.values() if i.tenant != PLATFORM_TENANT
        }
        self._uncovered_sorted: tuple[str, ...] | None = None
        self._flags: dict[str, int] = {}
        self._views: dict[str, View] = {}
        self._sorted: tuple[View, ...] | None = ()
        self.succeeded = 0
        self._covers: Counter[str] = Counter()

    @classmethod
    def of(
        cls,
        integrations: Mapping[str, Integration],
        states: Mapping[str, IntegrationState],
        results: Mapping[str, ProbeResult],
    ) -> Fleet:
        fleet = cls(integrations)
        for iid in integrations:
            state = states.get(iid) or IntegrationState(integration_id=iid)
            fleet.update(iid, rule_inputs(state, results.get(iid)))
        return fleet

    def update(self, iid: str, inputs: RuleInputs) -> None:
        """Integration `iid` now reads `inputs`: move it between notable and quiet and
        adjust the counts by the difference of its contribution."""
        integration = self.integrations.get(iid)
        if integration is None:
            return  # not in the configured fleet: no rule reads it
        old, new = self._flags.get(iid, 0), _flags(integration, inputs)
        if old != new:
            self._flags[iid] = new
            self.succeeded += (new & _SUCCEEDED) - (old & _SUCCEEDED)
            if (old ^ new) & _COVERS:
                self._cover(integration.tenant, 1 if new & _COVERS else -1)
        if notable(inputs):
            self._views[iid] = View(integration=integration, inputs=inputs)
            self._sorted = None
        elif self._views.pop(iid, None) is not None:
            self._sorted = None

    def _cover(self, tenant: str, by: int) -> None:
        self._covers[tenant] += by
        if tenant == PLATFORM_TENANT:
            return
        self._uncovered_sorted = None
        if self._covers[tenant] > 0:
            self._uncovered.discard(tenant)
        else:
            self._uncovered.add(tenant)

    @property
    def views(self) -> tuple[View, ...]:
        """The notable views, sorted by integration id (the order the rules emit in)."""
        if self._sorted is None:
            self._sorted = tuple(self._views[iid] for iid in sorted(self._views))
        return self._sorted

    def tenants_without_sms_fallback(self) -> tuple[str, ...]:
        """Tenants (not the platform) with no connected SMS fallback
        (`Integration.sms_fallback`: Twilio) that is not failing.

        Seed 000: while the bridge is down, these tenants' iMessages sit in the queue
        instead of falling back to SMS. The bridge page lists them."""
        if self._uncovered_sorted is None:
            self._uncovered_sorted = tuple(sorted(self._uncovered))
        return self._uncovered_sorted

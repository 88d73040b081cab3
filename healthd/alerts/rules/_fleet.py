"""The fleet as the rules need it: the few integrations that can raise or hold a condition,
and counters that stand for all the others.

At 100,000 integrations almost all are quiet: not failing, not degraded, no unreachable
timer running. A quiet integration triggers nothing and holds nothing open; what the rules
need of it is a count (a provider's members and witnesses, whether anything succeeded,
which tenants still have an SMS fallback). So a `Fleet` keeps the views of the notable
integrations only, per-integration contributions to those counts, and each provider's
`Tally` of its notable members; `update` moves one integration between them in O(1), and
`add`/`remove` take a registry change in O(1) too. The alert engine keeps one up to date from each
run's change; `Fleet.of` builds one from scratch, which is what `evaluate()` does, so the
two must agree (tests/alerts/test_incremental.py checks they do).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from healthd.alerts.rules._base import RuleInputs, Tally, View, rule_inputs
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
    """Notable views by integration id, plus the counts the rules read of everyone.

    `dirty` collects the integrations whose view changed (or that came or went) since
    its owner last took it (`take_dirty`): the incremental engine derives their
    conditions again and no one else's."""

    def __init__(self, integrations: Mapping[str, Integration]) -> None:
        self.integrations: dict[str, Integration] = {}
        self.members: Counter[str] = Counter()
        self.tallies: dict[str, Tally] = {}
        self._tenants: Counter[str] = Counter()
        # Tenants (not the platform) with no SMS fallback that is not failing.
        self._uncovered: set[str] = set()
        self._uncovered_sorted: tuple[str, ...] | None = None
        self._flags: dict[str, int] = {}
        self._views: dict[str, View] = {}
        self._sorted: tuple[View, ...] | None = ()
        self.succeeded = 0
        self._covers: Counter[str] = Counter()
        self.dirty: set[str] = set()
        for integration in integrations.values():
            self._join(integration)

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
        self._set_flags(iid, integration, _flags(integration, inputs))
        view = View(integration=integration, inputs=inputs) if notable(inputs) else None
        self._set_view(iid, view)

    def view(self, iid: str) -> View | None:
        """The notable view of `iid`; None for a quiet integration or one not in the fleet."""
        return self._views.get(iid)

    def add(self, integration: Integration, inputs: RuleInputs) -> None:
        """A new integration (the registry, a reload), reading `inputs`; or, for an id
        already in the fleet, its replacement, which keeps what its runs told (the
        runner keeps the state and results of a replaced integration)."""
        iid = integration.id
        old = self.integrations.get(iid)
        if old is None:
            self._join(integration)
            self.update(iid, inputs)
            return
        view, succeeded = self._views.get(iid), self._flags.get(iid, 0) & _SUCCEEDED
        self.remove(iid)
        self._join(integration)
        if view is not None:
            self.update(iid, view.inputs)
        else:  # quiet, so not failing: it covers its tenant if it is an SMS fallback
            covers = _COVERS if integration.sms_fallback else 0
            self._set_flags(iid, integration, succeeded | covers)

    def remove(self, iid: str) -> None:
        """Takes `iid` out of the fleet and every count."""
        integration = self.integrations.get(iid)
        if integration is None:
            return
        self._set_flags(iid, integration, 0)
        self._set_view(iid, None)
        self._flags.pop(iid, None)
        del self.integrations[iid]
        self.members[integration.provider] -= 1
        if not self.members[integration.provider]:
            del self.members[integration.provider]
        tenant = integration.tenant
        self._tenants[tenant] -= 1
        if not self._tenants[tenant]:
            del self._tenants[tenant]
            self._covers.pop(tenant, None)
            self._uncovered.discard(tenant)
            self._uncovered_sorted = None
        self.dirty.add(iid)

    def take_dirty(self) -> set[str]:
        """The integrations changed since the last call, and a fresh set for the next."""
        dirty, self.dirty = self.dirty, set()
        return dirty

    def _join(self, integration: Integration) -> None:
        self.integrations[integration.id] = integration
        self.members[integration.provider] += 1
        tenant = integration.tenant
        self._tenants[tenant] += 1
        if tenant != PLATFORM_TENANT and self._covers[tenant] <= 0:
            if tenant not in self._uncovered:
                self._uncovered.add(tenant)
                self._uncovered_sorted = None

    def _set_flags(self, iid: str, integration: Integration, new: int) -> None:
        old = self._flags.get(iid, 0)
        if old != new:
            self._flags[iid] = new
            self.succeeded += (new & _SUCCEEDED) - (old & _SUCCEEDED)
            if (old ^ new) & _COVERS:
                self._cover(integration.tenant, 1 if new & _COVERS else -1)

    def _set_view(self, iid: str, view: View | None) -> None:
        old = self._views.get(iid)
        if old is None and view is None:
            return
        if old is not None:
            self._tally(old, -1)
        if view is None:
            del self._views[iid]
        else:
            self._views[iid] = view
            self._tally(view, 1)
        self._sorted = None
        self.dirty.add(iid)

    def _tally(self, view: View, by: int) -> None:
        provider = view.integration.provider
        tally = self.tallies.get(provider)
        if tally is None:
            tally = self.tallies[provider] = Tally()
        tally.count(view, by)

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

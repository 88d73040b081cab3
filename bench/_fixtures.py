"""Integrations and realistic state for the benchmarks, built the way the config builds them.

Bench integrations are the real `Integration` type with a resolved `Secret`, so the probe
and the metrics collector see exactly what they see in the daemon.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from prometheus_client import CollectorRegistry

from healthd.metrics import (
    AlertView,
    HealthCollector,
    Instruments,
    IntegrationSeries,
    View,
)
from healthd.model import Integration, IntegrationState, Status, Thresholds
from healthd.registry import probe_class
from healthd.secrets import Secret
from healthd.sim.bridge import DEFAULT_PASSWORD as SIM_BRIDGE_PASSWORD
from healthd.sim.fixtures import integration_entry
from probes.bridge import PROVIDER as BRIDGE_PROVIDER

# `--provider mixed` in the sweep (issue 4): a CRM's accounts, most of them SMS and email.
SWEEP_MIX = (("twilio", 40), ("sendgrid", 25), ("google", 25), (BRIDGE_PROVIDER, 10))
MIXED = "mixed"

T = TypeVar("T")

# A CRM's integrations: mostly tenants' provider accounts, a few platform bridges.
PROVIDER_MIX = (("twilio", 40), ("sendgrid", 30), ("google", 28), (BRIDGE_PROVIDER, 2))
# Raw status of the latest run: most accounts are fine, a few are not.
STATUS_MIX = (
    (Status.OK, 90),
    (Status.DEGRADED, 5),
    (Status.FAILING, 3),
    (Status.UNREACHABLE, 2),
)


def integration(
    i: int,
    *,
    provider: str,
    base_url: str,
    tenant: str,
    timeout: float = 10.0,
    credentials: dict[str, str] | None = None,
    options: dict[str, object] | None = None,
) -> Integration:
    """As `healthd.config` builds one: credentials as `Secret`s, options validated by the
    provider's own `Options` model (so a probe gets the parsed object, as in the daemon)."""
    return Integration(
        id=f"{provider}-{i:06d}",
        provider=provider,
        tenant=tenant,
        base_url=base_url,
        page=False,
        interval=timedelta(seconds=60),
        timeout=timedelta(seconds=timeout),
        thresholds=Thresholds(),
        credentials={
            name: Secret(value)
            for name, value in (credentials or {"password": SIM_BRIDGE_PASSWORD}).items()
        },
        options=None if options is None else probe_class(provider).Options.model_validate(options),
        traits=probe_class(provider).traits,
    )


@dataclass(frozen=True, slots=True)
class Member:
    """One integration of a bench fleet: its index, provider, id and simulator target (the
    name the simulator keys it on, so each is its own account there)."""

    i: int
    provider: str

    @property
    def id(self) -> str:
        return f"{self.provider}-{self.i:06d}"

    @property
    def target(self) -> str:
        return _target(self.provider, self.i)


def fleet(provider: str, n: int) -> list[Member]:
    """N integrations of `provider`, or of `SWEEP_MIX` for `mixed`, each a distinct target.

    The mix is interleaved (not 4,000 Twilio accounts, then 2,500 SendGrid ...), as a CRM's
    accounts come in, so every part of a sweep (or of an interval) sees the same mix.
    """
    providers = spread(n, SWEEP_MIX) if provider == MIXED else [provider] * n
    return [Member(i, p) for i, p in enumerate(providers)]


def sim_integration(
    member: Member, sim_url: str, tenant: str, bridge_options: dict[str, object]
) -> Integration:
    """`member`, healthy, configured as the e2e tests configure it (`healthd.sim.fixtures`)
    but with literal credentials; a bridge's options updated with `bridge_options`."""
    i, provider = member.i, member.provider
    entry = integration_entry(provider, sim_url, member.target, id=member.id, tenant=tenant)
    if provider == BRIDGE_PROVIDER and bridge_options:
        entry["options"] = {**entry.get("options", {}), **bridge_options}
    return integration(
        i,
        provider=provider,
        base_url=entry["base_url"],
        tenant=tenant,
        credentials=entry["credentials"],
        options=entry.get("options"),
    )


def _target(provider: str, i: int) -> str:
    """A distinct simulator target per integration: the name the simulator keys it on."""
    return {
        BRIDGE_PROVIDER: f"b{i}",
        "twilio": f"AC{i:032x}",
        "sendgrid": f"SG.bench-{i:06d}",
        "google": f"bench-{i:06d}.apps.example",
    }[provider]


def population(
    provider: str, n: int, sim_url: str, bridge_options: dict[str, object] | None = None
) -> list[Integration]:
    """`fleet(provider, n)` as `Integration`s, three to a tenant."""
    tenants = max(1, n // 3)
    return [
        sim_integration(m, sim_url, f"tenant{m.i % tenants}", bridge_options or {})
        for m in fleet(provider, n)
    ]


def spread(n: int, mix: tuple[tuple[T, int], ...]) -> list[T]:
    """N values in the proportions of `mix`, evenly interleaved: each next value is the one
    furthest behind its share so far (deterministic, unlike sampling)."""
    total = sum(w for _, w in mix)
    counts = [0] * len(mix)
    out = []
    for i in range(n):
        k = max(range(len(mix)), key=lambda j: (i + 1) * mix[j][1] / total - counts[j])
        counts[k] += 1
        out.append(mix[k][0])
    return out


def _pick(rng: random.Random, mix: tuple[tuple[T, int], ...]) -> T:
    return rng.choices([v for v, _ in mix], [w for _, w in mix])[0]


def realistic_views(n: int, seed: int = 2) -> list[View]:
    """N integrations after some hours of running: checked, mostly ok, a few failing."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    views = []
    for i in range(n):
        provider = _pick(rng, PROVIDER_MIX)
        raw = _pick(rng, STATUS_MIX)
        checked = now - timedelta(seconds=rng.uniform(0, 60))
        bad = raw.is_bad
        state = IntegrationState(
            integration_id=f"{provider}-{i:06d}",
            status=Status.FAILING if bad and rng.random() < 0.7 else raw,
            since=now - timedelta(hours=rng.uniform(0, 48)),
            consecutive_failures=rng.randint(1, 10) if bad else 0,
            consecutive_successes=0 if bad else rng.randint(1, 500),
            last_checked=checked,
            last_success=checked - timedelta(minutes=rng.uniform(1, 90)) if bad else checked,
            unreachable_since=(
                checked - timedelta(minutes=rng.uniform(1, 30))
                if raw is Status.UNREACHABLE
                else None
            ),
            last_result_status=raw,
            reachable_streak=0 if raw is Status.UNREACHABLE else rng.randint(1, 500),
        )
        views.append(
            View(
                integration=integration(
                    i,
                    provider=provider,
                    base_url="https://api.example.invalid",
                    tenant=f"tenant{i // 3:06d}",
                ),
                state=state,
                last_duration=rng.lognormvariate(-2.0, 0.6),
            )
        )
    return views


def daemon_registry() -> tuple[CollectorRegistry, Instruments]:
    """The registry the daemon serves on /metrics, with its instruments; see `add_health`."""
    registry = CollectorRegistry()
    return registry, Instruments(registry)


def add_health(
    registry: CollectorRegistry, series: IntegrationSeries, now: Callable[[], float] = time.time
) -> None:
    """Registers the health collector over a runner's series, after the instruments."""
    registry.register(HealthCollector(series, lambda: AlertView({}, None, {}), now))


def series_count(body: bytes) -> int:
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))

"""Integrations and realistic state for the benchmarks, built the way the config builds them.

Bench integrations are the real `Integration` type with a resolved `Secret`, so the probe
and the metrics collector see exactly what they see in the daemon.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from prometheus_client import CollectorRegistry

from healthd.metrics import (
    BRIDGE_PROVIDER,
    AlertView,
    HealthCollector,
    Instruments,
    IntegrationSeries,
    View,
)
from healthd.model import Integration, IntegrationState, Status, Thresholds
from healthd.secrets import Secret

# The simulator's default bridge password (healthd/sim/bridge.py).
SIM_BRIDGE_PASSWORD = "sim-bridge-password"

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
    i: int, *, provider: str, base_url: str, tenant: str, timeout: float = 10.0
) -> Integration:
    return Integration(
        id=f"{provider}-{i:06d}",
        provider=provider,
        tenant=tenant,
        base_url=base_url,
        page=False,
        interval=timedelta(seconds=60),
        timeout=timedelta(seconds=timeout),
        thresholds=Thresholds(),
        credentials={"password": Secret(SIM_BRIDGE_PASSWORD)},
    )


def bridges(n: int, sim_url: str) -> list[Integration]:
    """N bridge integrations, each its own simulator target (`<sim>/bridges/b<i>`)."""
    return [
        integration(
            i,
            provider=BRIDGE_PROVIDER,
            base_url=f"{sim_url}/bridges/b{i}",
            tenant=f"tenant{i % max(1, n // 3)}",
        )
        for i in range(n)
    ]


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

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
from healthd.registry import probe_class
from healthd.secrets import Secret
from healthd.sim.twilio import DEFAULT_TOKEN as SIM_TWILIO_TOKEN
from healthd.sim.twilio import LOCAL_NUMBER, TOLLFREE_NUMBER, service_sid

# The simulator's default bridge password (healthd/sim/bridge.py).
SIM_BRIDGE_PASSWORD = "sim-bridge-password"

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
    )


def sim_integration(i: int, provider: str, sim_url: str, tenant: str) -> Integration:
    """Integration `i` of `provider`, its own simulator target, healthy, as the e2e tests
    configure it (tests/e2e/test_twilio_daemon.py, test_email_daemon.py).

    Targets: a bridge is `<sim>/bridges/b<i>`; Twilio's is the account SID (`AC` + 32 hex);
    SendGrid's the API key; Google's the OAuth client_id.
    """
    statuspage = f"{sim_url}/status/{provider}/api/v2/summary.json"
    credentials: dict[str, str] | None = None
    options: dict[str, object] | None = None
    base_url = sim_url
    if provider == BRIDGE_PROVIDER:
        base_url = f"{sim_url}/bridges/b{i}"
    elif provider == "twilio":
        sid = f"AC{i:032x}"
        credentials = {"account_sid": sid, "auth_token": SIM_TWILIO_TOKEN}
        options = {
            "messaging_base_url": sim_url,
            "senders": [LOCAL_NUMBER, TOLLFREE_NUMBER],
            "messaging_service_sid": service_sid(sid),
            "a2p": True,
            "statuspage_url": statuspage,
        }
    elif provider == "sendgrid":
        credentials = {"api_key": f"SG.bench-{i:06d}"}
        options = {"from_email": "sales@example.com", "statuspage_url": statuspage}
    elif provider == "google":
        credentials = {
            "client_id": f"bench-{i:06d}.apps.example",
            "client_secret": "bench-client-secret",
            "refresh_token": f"1//bench-refresh-{i:06d}",
        }
        options = {"token_url": f"{sim_url}/token", "send_as": "support@example.com"}
    else:
        raise ValueError(f"no simulator fixture for provider {provider!r}")
    return integration(
        i,
        provider=provider,
        base_url=base_url,
        tenant=tenant,
        credentials=credentials,
        options=options,
    )


def population(provider: str, n: int, sim_url: str) -> list[Integration]:
    """N integrations of `provider`, or of `SWEEP_MIX` for `mixed`, each a distinct target.

    The mix is interleaved (not 4,000 Twilio accounts, then 2,500 SendGrid ...), as a CRM's
    accounts come in, so every part of a sweep sees the same mix.
    """
    providers = spread(n, SWEEP_MIX) if provider == MIXED else [provider] * n
    tenants = max(1, n // 3)
    return [
        sim_integration(i, p, sim_url, tenant=f"tenant{i % tenants}")
        for i, p in enumerate(providers)
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

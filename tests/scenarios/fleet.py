"""The simulated fleet: a platform bridge, tenants' Twilio, SendGrid and Google integrations,
and the platform's own SendGrid, all pointed at the simulator.

Each integration knows its simulator target (account SID, API key, bridge name, OAuth
client id), so a scenario script can break one integration without touching the others.
Credentials come from environment variables `set_fleet_env` sets.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pytest

from healthd.sim.app import SimulatorThread
from healthd.sim.fixtures import integration_entry, sim_credentials

BRIDGE_NAME = "dc1"
BRIDGE_ID = f"bridge-{BRIDGE_NAME}"


@dataclass(frozen=True, slots=True)
class Member:
    """One integration of the fleet and the simulator target that answers for it, or a
    target the fleet only reads (a provider's status page: no integration, no config)."""

    id: str
    provider: str  # the simulator's provider name
    target: str
    config: dict[str, Any]


def member(
    sim: SimulatorThread, provider: str, tenant: str, target: str, id: str | None = None
) -> Member:
    """`tenant`'s integration of `provider`, its credentials read from `SCN_<TENANT>_<NAME>`."""
    id = id or f"{tenant}-{provider}"
    config = integration_entry(
        provider,
        sim.http_url,
        target,
        id=id,
        tenant=tenant,
        credentials=lambda name: f"env:{_env_name(tenant, name)}",
    )
    return Member(id=id, provider=provider, target=target, config=config)


def _env_name(tenant: str, credential: str) -> str:
    return f"SCN_{tenant}_{credential}".upper().replace("-", "_")


def twilio_sid(tenant: str) -> str:
    return "AC" + hashlib.md5(tenant.encode()).hexdigest()


def twilio_member(sim: SimulatorThread, tenant: str) -> Member:
    return member(sim, "twilio", tenant, twilio_sid(tenant))


def sendgrid_key(tenant: str) -> str:
    return f"SG.sim-{tenant}.key"


def sendgrid_member(sim: SimulatorThread, tenant: str) -> Member:
    return member(sim, "sendgrid", tenant, sendgrid_key(tenant))


def google_client(tenant: str) -> str:
    return f"{tenant}-client.apps.googleusercontent.com"


def google_member(sim: SimulatorThread, tenant: str) -> Member:
    return member(sim, "google", tenant, google_client(tenant))


def bridge_member(sim: SimulatorThread) -> Member:
    return member(sim, "imessage_bridge", "platform", BRIDGE_NAME, id=BRIDGE_ID)


def status_page(provider: str) -> Member:
    """`provider`'s status page, which every integration of it reads: not an integration,
    but a target a script can play a scenario on (a carrier's incident on Twilio's page)."""
    return Member(id=f"{provider}-status-page", provider="statuspage", target=provider, config={})


def set_fleet_env(monkeypatch: pytest.MonkeyPatch, members: list[Member]) -> None:
    """Put the credentials the simulator accepts for each member's target where its
    config's `env:` references look."""
    for m in members:
        for name, value in sim_credentials(m.provider, m.target).items():
            monkeypatch.setenv(_env_name(m.config["tenant"], name), value)

"""The simulated fleet: a platform bridge, tenants' Twilio, SendGrid and Google integrations,
and the platform's own SendGrid, all pointed at the simulator.

Each integration knows its simulator target (account SID, API key, bridge name, OAuth
client id), so a scenario script can break one integration without touching the others.
Credentials come from environment variables the `fleet_env` helper sets.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pytest

from healthd.sim.app import SimulatorThread
from healthd.sim.fixtures import integration_entry
from tests.conftest import bridge

TWILIO_TOKEN = "sim-twilio-token"
BRIDGE_NAME = "dc1"
BRIDGE_ID = f"bridge-{BRIDGE_NAME}"


@dataclass(frozen=True, slots=True)
class Member:
    """One integration of the fleet and the simulator target that answers for it."""

    id: str
    provider: str  # the simulator's provider name
    target: str
    config: dict[str, Any]


def _env(name: str) -> str:
    return name.upper().replace("-", "_")


def member(
    sim: SimulatorThread, provider: str, tenant: str, target: str, credentials: dict[str, str]
) -> Member:
    id = f"{tenant}-{provider}"
    config = integration_entry(
        provider, sim.http_url, target, id=id, tenant=tenant, credentials=credentials
    )
    return Member(id=id, provider=provider, target=target, config=config)


def twilio_sid(tenant: str) -> str:
    return "AC" + hashlib.md5(tenant.encode()).hexdigest()


def twilio_member(sim: SimulatorThread, tenant: str) -> Member:
    credentials = {
        "account_sid": f"env:SCN_{_env(tenant)}_TWILIO_SID",
        "auth_token": "env:SCN_TWILIO_TOKEN",
    }
    return member(sim, "twilio", tenant, twilio_sid(tenant), credentials)


def sendgrid_key(tenant: str) -> str:
    return f"SG.sim-{tenant}.key"


def sendgrid_member(sim: SimulatorThread, tenant: str) -> Member:
    credentials = {"api_key": f"env:SCN_{_env(tenant)}_SENDGRID_KEY"}
    return member(sim, "sendgrid", tenant, sendgrid_key(tenant), credentials)


def google_client(tenant: str) -> str:
    return f"{tenant}-client.apps.googleusercontent.com"


def google_member(sim: SimulatorThread, tenant: str) -> Member:
    credentials = {
        "client_id": f"env:SCN_{_env(tenant)}_GOOGLE_CLIENT_ID",
        "client_secret": "env:SCN_GOOGLE_CLIENT_SECRET",
        "refresh_token": "env:SCN_GOOGLE_REFRESH_TOKEN",
    }
    return member(sim, "google", tenant, google_client(tenant), credentials)


def bridge_member(sim: SimulatorThread) -> Member:
    return Member(
        id=BRIDGE_ID,
        provider="imessage_bridge",
        target=BRIDGE_NAME,
        config=bridge(sim, BRIDGE_NAME),
    )


def set_fleet_env(monkeypatch: pytest.MonkeyPatch, members: list[Member]) -> None:
    """Put every member's credentials where its config's `env:` references look."""
    monkeypatch.setenv("SCN_TWILIO_TOKEN", TWILIO_TOKEN)
    monkeypatch.setenv("SCN_GOOGLE_CLIENT_SECRET", "sim-google-secret")
    monkeypatch.setenv("SCN_GOOGLE_REFRESH_TOKEN", "sim-google-refresh-token")
    for m in members:
        for ref in m.config.get("credentials", {}).values():
            name = ref.removeprefix("env:")
            if name.startswith("SCN_") and name.endswith(("_SID", "_KEY", "_CLIENT_ID")):
                monkeypatch.setenv(name, m.target)

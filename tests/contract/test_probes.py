"""Every registered probe against the simulator's common scenarios: the result's shape.

Whatever the provider does (answers, revokes the credential, fails with a 5xx, hangs),
a probe returns a result with a status and at least one finding, every problem finding
carries a catalogue code with a fix, and nothing escapes as an exception.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from healthd import probing
from healthd.catalog import load
from healthd.clock import SystemClock
from healthd.interfaces import ProbeContext
from healthd.model import Category, Integration, Status, Thresholds
from healthd.registry import probes
from healthd.secrets import Secret
from healthd.sim.app import SimulatorThread
from healthd.sim.client import SimClient
from healthd.sim.fixtures import integration_entry

pytestmark = pytest.mark.e2e

TWILIO_SID = "AC" + "d4" * 16


@dataclass(frozen=True)
class Case:
    target: str
    auth_revoked: str
    server_error: str


# One row per registered probe: a new probe adds its row, and the tests below run it.
CASES = {
    "imessage_bridge": Case("contract", "auth_fail", "server_error"),
    "twilio": Case(TWILIO_SID, "revoked_token", "server_error"),
    "sendgrid": Case("SG.contract-key", "revoked_key", "server_error"),
    "google": Case("contract.apps.example", "invalid_grant", "server_error"),
}


def test_every_registered_probe_has_a_contract_case() -> None:
    assert set(CASES) == set(probes())


async def run_probe(sim: SimulatorThread, provider: str, timeout: float = 3.0) -> Any:
    case = CASES[provider]
    cls = probes()[provider]
    entry = integration_entry(
        provider, sim.http_url, case.target, id=f"contract-{provider}", tenant="contract"
    )
    integration = Integration(
        id=entry["id"],
        provider=provider,
        tenant=entry["tenant"],
        base_url=entry["base_url"],
        page=False,
        interval=timedelta(seconds=60),
        timeout=timedelta(seconds=timeout),
        thresholds=Thresholds(),
        credentials={k: Secret(v) for k, v in entry["credentials"].items()},
        options=cls.Options.model_validate(entry.get("options", {})),
        traits=cls.traits,
    )
    catalog = load()
    async with aiohttp.ClientSession() as session:
        ctx = ProbeContext(session=session, clock=SystemClock(), catalog=catalog, timeout=timeout)
        async with asyncio.timeout(timeout + 2):
            result = await probing.check(cls(), integration, ctx)
    return result, catalog


def scenario_for(provider: str, which: str) -> str:
    case = CASES[provider]
    return {"ok": "ok", "auth": case.auth_revoked, "5xx": case.server_error, "hang": "hanging"}[
        which
    ]


@pytest.mark.parametrize("provider", sorted(CASES))
@pytest.mark.parametrize("which", ["ok", "auth", "5xx", "hang"])
async def test_probe_result_has_the_contract_shape(
    sim: SimulatorThread, sim_client: SimClient, provider: str, which: str
) -> None:
    sim_client.set_scenario(provider, scenario_for(provider, which), target=CASES[provider].target)
    result, catalog = await run_probe(sim, provider, timeout=1.5 if which == "hang" else 5.0)

    assert isinstance(result.status, Status)
    assert result.findings
    for finding in result.findings:
        if finding.status not in (Status.OK, Status.UNKNOWN):
            assert catalog.get(provider, finding.code) is not None, finding.code
            assert finding.remediation
    if which == "ok":
        assert result.status is Status.OK
    elif which == "auth":
        assert result.status is Status.FAILING
        assert Category.ACCOUNT in {f.category for f in result.findings}
    else:
        bad = [f for f in result.findings if f.status.is_bad]
        assert bad and {f.category for f in bad} <= {Category.PROVIDER}

"""A daemon with one Twilio and one SendGrid integration taking callbacks, no probes run.

The providers are played by `healthd.sim.callbacks`: signed as Twilio and SendGrid sign,
posted over real HTTP to the daemon's listener.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from healthd.clock import FakeClock
from healthd.daemon import Daemon
from healthd.ledger import Key, Window
from healthd.sim.callbacks import CallbackSender, SendGridSigner, Signed
from tests.conftest import TENANT_TOKENS, running_daemon

T0 = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)
ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "twilio-auth-token-for-callback-tests"
TWILIO_ID, SENDGRID_ID = "tw-acme", "sg-acme"


@dataclass
class Callbacks:
    daemon: Daemon
    clock: FakeClock
    sender: CallbackSender
    signer: SendGridSigner
    session: aiohttp.ClientSession

    def url(self, integration_id: str) -> str:
        return f"{self.daemon.url}/callbacks/{integration_id}"

    async def post(self, integration_id: str, signed: Signed) -> int:
        return await self.sender.post(self.url(integration_id), signed)

    async def answer(self, integration_id: str, signed: Signed) -> tuple[int, str]:
        """The status and the problem document's `detail` of one callback."""
        url, headers = self.url(integration_id), dict(signed.headers)
        async with self.session.post(url, data=signed.body, headers=headers) as r:
            detail: str = (await r.json(content_type=None))["detail"]
            return r.status, detail

    async def counts(self, integration_id: str, window: Window = Window.HOUR) -> dict[Key, int]:
        async with asyncio.timeout(10):
            await self.daemon.ledger.drained()
        return dict(self.daemon.ledger.counts(integration_id, window, self.clock.now()))

    def metric(self, name: str, **labels: str) -> float:
        return self.daemon.registry.get_sample_value(name, labels) or 0.0


def callback_config(signer: SendGridSigner, store: str = "memory:") -> dict[str, Any]:
    return {
        "listen": "127.0.0.1:0",
        "store": store,
        "api": {
            "tokens": [
                {"name": "ops", "role": "admin", "token": "env:HEALTHD_TEST_ADMIN_TOKEN"},
                *[
                    {"name": t, "tenant": t, "token": f"env:HEALTHD_TEST_TOKEN_{t.upper()}"}
                    for t in TENANT_TOKENS
                ],
            ]
        },
        "integrations": [
            {
                "id": TWILIO_ID,
                "provider": "twilio",
                "tenant": "acme",
                "base_url": "http://127.0.0.1:9",
                "credentials": {
                    "account_sid": "env:HEALTHD_TEST_TWILIO_SID",
                    "auth_token": "env:HEALTHD_TEST_TWILIO_TOKEN",
                },
            },
            {
                "id": SENDGRID_ID,
                "provider": "sendgrid",
                "tenant": "acme",
                "base_url": "http://127.0.0.1:9",
                "credentials": {"api_key": "env:HEALTHD_TEST_SENDGRID_KEY"},
                "callback_public_key": signer.public_key,
            },
        ],
    }


@pytest.fixture
def twilio_env(monkeypatch: pytest.MonkeyPatch, secrets_env: dict[str, str]) -> None:
    monkeypatch.setenv("HEALTHD_TEST_TWILIO_SID", ACCOUNT_SID)
    monkeypatch.setenv("HEALTHD_TEST_TWILIO_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("HEALTHD_TEST_SENDGRID_KEY", "SG.callback-tests")


@pytest.fixture
def signer() -> SendGridSigner:
    return SendGridSigner()


@pytest.fixture
async def callbacks(
    twilio_env: None, signer: SendGridSigner, tmp_path: Path
) -> AsyncIterator[Callbacks]:
    clock = FakeClock(T0)
    async with (
        running_daemon(callback_config(signer), clock=clock) as daemon,
        aiohttp.ClientSession() as session,
    ):
        yield Callbacks(daemon, clock, CallbackSender(session), signer, session)

"""GoogleProbe against the Google simulator (OAuth token endpoint and Gmail) on loopback."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from importlib.metadata import entry_points
from typing import Any

import aiohttp
import pytest

from healthd import probing
from healthd.interfaces import Probe
from healthd.model import Category, ProbeResult, Status
from healthd.sim.base import COMMON_SCENARIOS
from healthd.sim.google import GoogleSim
from probes.google import PROFILE_SCOPES, SEND_AS_SCOPES, GoogleOptions, GoogleProbe
from tests._shared import shared_file
from tests.email_support import NOW, by_code, leaks, make_ctx, make_integration, serve

CLIENT_ID = "1234-sim.apps.googleusercontent.com"
CLIENT_SECRET = "GOCSPX-planted-client-secret-91c2"
REFRESH_TOKEN = "1//0planted-refresh-token-5f7e"
ALIAS = "team@example.com"


@dataclass
class Env:
    sim: GoogleSim
    base: str
    session: aiohttp.ClientSession

    async def run(
        self,
        scenario: str | None = None,
        *,
        probe_timeout: float = 5.0,
        params: dict[str, Any] | None = None,
        **options: Any,
    ) -> ProbeResult:
        if scenario is not None:
            self.sim.set_scenario(scenario, CLIENT_ID, params)
        opts = GoogleOptions(
            token_url=f"{self.base}/token",
            send_as=options.pop("send_as", ALIAS),
            **options,
        )
        creds = {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": REFRESH_TOKEN,
        }
        integration = make_integration("google", self.base, creds, opts)
        async with asyncio.timeout(probe_timeout * 4 + 5):
            return await probing.check(
                GoogleProbe(), integration, make_ctx(self.session, timeout=probe_timeout)
            )


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    sim = GoogleSim()
    async with serve(sim) as base, aiohttp.ClientSession() as session:
        yield Env(sim, base, session)


def test_google_probe_meets_the_probe_protocol() -> None:
    assert isinstance(GoogleProbe(), Probe)
    assert GoogleProbe.credentials == ("client_id", "client_secret", "refresh_token")


async def test_healthy_account_passes_token_mailbox_and_send_as(env: Env) -> None:
    result = await env.run("ok")
    assert result.status is Status.OK
    assert [f.code for f in result.findings] == [
        "google.token_ok",
        "google.mailbox_ok",
        "google.send_as_ok",
    ]


async def test_primary_address_without_verification_status_is_a_good_sender(env: Env) -> None:
    result = await env.run("ok", send_as="sales@example.com")
    assert by_code(result, "google.send_as_ok").status is Status.OK


async def test_revoked_refresh_token_is_auth_invalid_with_reconnect_fix(env: Env) -> None:
    result = await env.run("invalid_grant")
    finding = by_code(result, "google.auth_invalid")
    assert finding.status is Status.FAILING
    assert finding.category is Category.ACCOUNT
    assert finding.provider_code == "invalid_grant"
    assert "Reconnect the Google account" in finding.remediation
    assert "expired or revoked" in finding.summary
    assert len(result.findings) == 1


async def test_invalid_client_has_its_own_code(env: Env) -> None:
    finding = by_code(await env.run("invalid_client"), "google.client_invalid")
    assert finding.status is Status.FAILING
    assert finding.category is Category.ACCOUNT
    assert finding.provider_code == "invalid_client"


async def test_missing_scope_names_the_scope_needed_and_the_one_granted(env: Env) -> None:
    result = await env.run("insufficient_scope")
    finding = by_code(result, "google.scope_missing")
    assert finding.status is Status.FAILING
    assert finding.category is Category.ACCOUNT
    assert finding.provider_code == "insufficientPermissions"
    assert "needs gmail.readonly" in finding.summary
    assert "the grant has gmail.send" in finding.summary


async def test_scopes_come_from_tokeninfo_when_the_token_answer_omits_them(env: Env) -> None:
    result = await env.run(
        "insufficient_scope",
        params={"scope_in_token": False},
        tokeninfo_url=f"{env.base}/tokeninfo",
    )
    assert "the grant has gmail.send" in by_code(result, "google.scope_missing").summary


async def test_access_token_refused_by_gmail_is_auth_error(env: Env) -> None:
    finding = by_code(await env.run("token_rejected"), "google.auth_error")
    assert finding.status is Status.FAILING
    assert finding.category is Category.ACCOUNT
    assert finding.provider_code == "authError"


async def test_missing_send_as_alias_fails_as_sender_config(env: Env) -> None:
    finding = by_code(await env.run("send_as_missing"), "google.send_as_missing")
    assert finding.status is Status.FAILING
    assert finding.category is Category.SENDER_CONFIG
    assert ALIAS in finding.summary


async def test_pending_send_as_alias_fails_as_unverified(env: Env) -> None:
    finding = by_code(await env.run("send_as_pending"), "google.send_as_unverified")
    assert finding.status is Status.FAILING
    assert finding.category is Category.SENDER_CONFIG
    assert finding.provider_code == "pending"


@pytest.mark.parametrize("reason", ["rateLimitExceeded", "userRateLimitExceeded"])
async def test_rate_limit_degrades_as_a_provider_finding(env: Env, reason: str) -> None:
    result = await env.run("rate_limited", params={"reason": reason})
    finding = by_code(result, "google.rate_limited")
    assert finding.status is Status.DEGRADED
    assert finding.category is Category.PROVIDER
    assert finding.provider_code == reason
    assert result.status is Status.DEGRADED


@pytest.mark.parametrize("endpoint", ["gmail", "token"])
async def test_server_error_is_provider_and_never_auth_invalid(env: Env, endpoint: str) -> None:
    result = await env.run("server_error", params={"endpoint": endpoint})
    finding = by_code(result, "google.server_error")
    assert finding.category is Category.PROVIDER
    assert not [f for f in result.findings if f.category is Category.ACCOUNT]


async def test_hanging_google_is_a_provider_timeout_and_never_auth_invalid(env: Env) -> None:
    result = await env.run("hanging", probe_timeout=0.3)
    finding = by_code(result, "google.timeout")
    assert finding.status is Status.UNREACHABLE
    assert finding.category is Category.PROVIDER
    assert not [f for f in result.findings if f.category is Category.ACCOUNT]


@pytest.mark.parametrize(
    ("age", "code", "status"),
    [
        (timedelta(days=6), "google.refresh_token_expiring", Status.DEGRADED),
        (timedelta(days=5, hours=1), "google.refresh_token_expiring", Status.DEGRADED),
        (timedelta(days=8), "google.refresh_token_expired", Status.FAILING),
    ],
)
async def test_testing_mode_token_expiry_is_reported_ahead(
    env: Env, age: timedelta, code: str, status: Status
) -> None:
    result = await env.run("ok", testing_mode=True, refresh_token_issued_at=NOW - age)
    finding = by_code(result, code)
    assert finding.status is status
    assert finding.category is Category.ACCOUNT
    assert "publish the oauth app" in finding.remediation.lower()


async def test_testing_mode_token_with_days_left_is_ok(env: Env) -> None:
    result = await env.run("ok", testing_mode=True, refresh_token_issued_at=NOW - timedelta(days=4))
    assert result.status is Status.OK
    assert by_code(result, "google.token_ok").status is Status.OK


async def test_testing_mode_without_issue_time_says_expiry_is_unknown(env: Env) -> None:
    result = await env.run("ok", testing_mode=True)
    assert by_code(result, "google.refresh_token_expiry_unknown").status is Status.UNKNOWN
    assert result.status is Status.OK


async def test_invalid_grant_past_testing_lifetime_says_why(env: Env) -> None:
    result = await env.run(
        "invalid_grant", testing_mode=True, refresh_token_issued_at=NOW - timedelta(days=9)
    )
    assert "testing mode" in by_code(result, "google.auth_invalid").summary


@pytest.mark.parametrize("scenario", sorted(GoogleSim.scenarios | COMMON_SCENARIOS - {"slow"}))
async def test_planted_credentials_and_access_tokens_never_appear(
    env: Env, scenario: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    result = await env.run(
        scenario,
        probe_timeout=0.3 if scenario == "hanging" else 5.0,
        tokeninfo_url=f"{env.base}/tokeninfo",
        params={"scope_in_token": False},
    )
    planted = [CLIENT_SECRET, REFRESH_TOKEN, *env.sim.access_tokens]
    assert leaks(result, caplog.text, planted) == []


async def test_other_oauth_errors_are_token_rejected_and_named(env: Env) -> None:
    finding = by_code(await env.run("unauthorized_client"), "google.token_rejected")
    assert finding.status is Status.FAILING
    assert finding.provider_code == "unauthorized_client"


async def test_gmail_api_disabled_is_forbidden_with_googles_reason(env: Env) -> None:
    finding = by_code(await env.run("api_disabled"), "google.forbidden")
    assert finding.status is Status.FAILING
    assert finding.category is Category.ACCOUNT
    assert finding.provider_code == "accessNotConfigured"


@pytest.mark.parametrize(
    ("method", "scopes"),
    [("getProfile", PROFILE_SCOPES), ("settings.sendAs.get", SEND_AS_SCOPES)],
)
def test_scopes_named_in_findings_are_ones_the_discovery_doc_accepts(
    method: str, scopes: tuple[str, ...]
) -> None:
    spec = shared_file("specs", "google", "gmail.v1.discovery.json")
    node = json.loads(spec.read_text("utf-8"))["resources"]["users"]
    *path, name = method.split(".")
    for part in path:
        node = node["resources"][part]
    accepted = {
        s.removeprefix("https://www.googleapis.com/auth/") for s in node["methods"][name]["scopes"]
    }
    assert set(scopes) <= accepted
    assert "gmail.send" not in accepted  # PROVIDERS.md C2: gmail.send alone reads nothing


async def test_expiry_warning_survives_an_unreachable_google(env: Env) -> None:
    result = await env.run(
        "hanging",
        probe_timeout=0.3,
        testing_mode=True,
        refresh_token_issued_at=NOW - timedelta(days=6),
    )
    assert by_code(result, "google.refresh_token_expiring").status is Status.DEGRADED
    assert by_code(result, "google.timeout").category is Category.PROVIDER


def test_probe_is_registered_under_its_provider_name() -> None:
    (ep,) = [e for e in entry_points(group="healthd.probes") if e.name == "google"]
    assert ep.load() is GoogleProbe


async def test_probe_answers_before_the_runner_cuts_it_off(env: Env) -> None:
    """The runner keeps nothing of a run it cuts off at ctx.timeout; the probe ends first."""
    env.sim.set_scenario("hanging", CLIENT_ID)
    integration = make_integration(
        "google",
        env.base,
        {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN},
        GoogleOptions(token_url=f"{env.base}/token"),
    )
    # Its 10% share (0.6 s) is the margin (0.3 s proved too little on a loaded host),
    # and 5.4 s is above aiohttp's 5 s ceil_threshold, which must not round it up.
    ctx = make_ctx(env.session, timeout=6.0)
    async with asyncio.timeout(ctx.timeout):  # as healthd.runner does
        result = await probing.check(GoogleProbe(), integration, ctx)
    assert by_code(result, "google.timeout").category is Category.PROVIDER

"""SendGridProbe against the SendGrid and Statuspage simulators on loopback."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from healthd import probing
from healthd.interfaces import Probe
from healthd.model import Category, ProbeResult, Status
from healthd.sim.base import COMMON_SCENARIOS
from healthd.sim.sendgrid import SendGridSim
from healthd.sim.statuspage import StatusPageSim
from probes.sendgrid import SendGridOptions, SendGridProbe
from tests.email_support import by_code, leaks, make_ctx, make_integration, serve

KEY = "SG.planted-key-7d1f0c.e3b0c44298fc1c149afbf4c8996fb924"
FROM = "sales@example.com"
RECONNECT = "The API key is wrong. Reconnect the integration."


@dataclass
class Env:
    sim: SendGridSim
    pages: StatusPageSim
    base: str
    session: aiohttp.ClientSession

    async def run(
        self,
        scenario: str | None = None,
        *,
        key: str = KEY,
        probe_timeout: float = 5.0,
        params: dict[str, Any] | None = None,
        **options: Any,
    ) -> ProbeResult:
        if scenario is not None:
            self.sim.set_scenario(scenario, key, params)
        opts = SendGridOptions(
            from_email=options.pop("from_email", FROM),
            statuspage_url=f"{self.base}/status/sendgrid/api/v2/summary.json",
            **options,
        )
        integration = make_integration("sendgrid", self.base, {"api_key": key}, opts)
        ctx = make_ctx(self.session, timeout=probe_timeout)
        async with asyncio.timeout(probe_timeout * 6 + 5):
            return await probing.check(SendGridProbe(), integration, ctx)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    sim, pages = SendGridSim(), StatusPageSim()
    async with serve(sim, pages) as base, aiohttp.ClientSession() as session:
        yield Env(sim, pages, base, session)


def test_sendgrid_probe_meets_the_probe_protocol() -> None:
    assert isinstance(SendGridProbe(), Probe)
    assert SendGridProbe.credentials == ("api_key",)


async def test_healthy_account_passes_every_check(env: Env) -> None:
    result = await env.run("ok")
    assert result.status is Status.OK
    codes = {f.code for f in result.findings}
    assert {"sendgrid.key_ok", "sendgrid.sender_verified", "sendgrid.delivery_ok"} <= codes
    assert "sendgrid.platform_operational" in codes


async def test_revoked_key_is_auth_invalid_with_reconnect_fix(env: Env) -> None:
    result = await env.run("revoked_key")
    finding = by_code(result, "sendgrid.auth_invalid")
    assert finding.status is Status.FAILING
    assert finding.category is Category.ACCOUNT
    assert finding.provider_code == "401"
    assert finding.remediation.startswith(RECONNECT)
    assert result.status is Status.FAILING


async def test_missing_key_is_told_apart_from_a_revoked_one(env: Env) -> None:
    finding = by_code(await env.run("missing_key"), "sendgrid.auth_missing")
    assert finding.category is Category.ACCOUNT
    assert finding.status is Status.FAILING
    assert finding.remediation.startswith(RECONNECT)
    assert "no usable API key" in finding.summary


async def test_empty_key_is_sent_without_authorization_and_reads_as_missing(env: Env) -> None:
    result = await env.run(key="")
    assert by_code(result, "sendgrid.auth_missing").status is Status.FAILING


async def test_key_without_mail_send_scope_fails(env: Env) -> None:
    result = await env.run("no_mail_send_scope")
    finding = by_code(result, "sendgrid.scope_missing")
    assert finding.status is Status.FAILING
    assert finding.category is Category.ACCOUNT
    assert "mail.send" in finding.summary
    assert result.status is Status.FAILING


async def test_unverified_sender_fails_with_finish_sender_authentication(env: Env) -> None:
    finding = by_code(await env.run("sender_unverified"), "sendgrid.sender_unverified")
    assert finding.status is Status.FAILING
    assert finding.category is Category.SENDER_CONFIG
    assert finding.provider_code == "403"
    assert "Finish sender authentication" in finding.remediation
    assert FROM in finding.summary


async def test_address_on_an_authenticated_domain_counts_as_verified(env: Env) -> None:
    result = await env.run("ok", from_email="ops@example.com")
    finding = by_code(result, "sendgrid.sender_verified")
    assert "example.com is an authenticated domain" in finding.summary


@pytest.mark.parametrize("record", ["mail_cname", "dkim1", "dkim2"])
async def test_domain_with_invalid_dns_names_the_record(env: Env, record: str) -> None:
    result = await env.run("domain_invalid_dns", params={"record": record})
    finding = by_code(result, "sendgrid.domain_dns_invalid")
    assert finding.status is Status.FAILING
    assert finding.category is Category.SENDER_CONFIG
    assert record in finding.summary
    others = {"mail_cname", "dkim1", "dkim2"} - {record}
    assert not any(f"{o} (" in finding.summary for o in others)


@pytest.mark.parametrize(
    ("scenario", "code"),
    [
        ("blocks_spike", "sendgrid.block_rate_high"),
        ("spam_reports", "sendgrid.spam_report_rate_high"),
        ("deferrals", "sendgrid.deferral_rate_high"),
    ],
)
async def test_reputation_rates_past_their_threshold_degrade(
    env: Env, scenario: str, code: str
) -> None:
    result = await env.run(scenario)
    finding = by_code(result, code)
    assert finding.status is Status.DEGRADED
    assert finding.category is Category.SENDER_CONFIG
    assert finding.count and finding.count > 0
    assert result.status is Status.DEGRADED


async def test_rates_under_a_raised_threshold_do_not_degrade(env: Env) -> None:
    result = await env.run("blocks_spike", block_rate_degraded=0.5)
    assert result.status is Status.OK
    assert by_code(result, "sendgrid.delivery_ok").status is Status.OK


@pytest.mark.parametrize("rate", [0.02, 0.4, 1.0])
async def test_bounces_alone_never_make_the_integration_unhealthy(env: Env, rate: float) -> None:
    result = await env.run("high_bounces", params={"rate": rate})
    assert result.status is Status.OK
    bounce = next(f for f in result.findings if "bounce" in f.code)
    assert bounce.category is Category.RECIPIENT
    assert bounce.status is Status.OK
    assert "mailboxes are bad" in bounce.summary


async def test_bounce_rate_past_its_threshold_asks_for_list_cleaning_but_stays_ok(
    env: Env,
) -> None:
    result = await env.run("high_bounces")
    finding = by_code(result, "sendgrid.bounce_rate_high")
    assert finding.status is Status.OK
    assert "Update the leads' emails" in finding.remediation


async def test_too_few_emails_are_not_judged(env: Env) -> None:
    result = await env.run("blocks_spike", params={"daily_requests": 5})
    assert result.status is Status.OK
    assert by_code(result, "sendgrid.delivery_low_volume").count == 35


async def test_rate_limit_429_degrades_as_a_provider_finding(env: Env) -> None:
    result = await env.run("rate_limited")
    finding = by_code(result, "sendgrid.rate_limited")
    assert finding.status is Status.DEGRADED
    assert finding.category is Category.PROVIDER
    assert result.status is Status.DEGRADED


async def test_server_error_is_provider_and_never_auth_invalid(env: Env) -> None:
    result = await env.run("server_error")
    finding = by_code(result, "sendgrid.server_error")
    assert finding.category is Category.PROVIDER
    assert finding.provider_code == "500"
    assert not [f for f in result.findings if f.category is Category.ACCOUNT]


async def test_hanging_api_is_a_provider_timeout_and_never_auth_invalid(env: Env) -> None:
    result = await env.run("hanging", probe_timeout=0.3)
    finding = by_code(result, "sendgrid.timeout")
    assert finding.status is Status.UNREACHABLE
    assert finding.category is Category.PROVIDER
    assert finding.network_error
    assert not [f for f in result.findings if f.category is Category.ACCOUNT]


async def test_refused_connection_is_unreachable(env: Env) -> None:
    integration = make_integration(
        "sendgrid",
        "http://127.0.0.1:9",
        {"api_key": KEY},
        SendGridOptions(from_email=FROM, statuspage_url=f"{env.base}/status/sendgrid/x"),
    )
    async with asyncio.timeout(10):
        result = await probing.check(SendGridProbe(), integration, make_ctx(env.session, timeout=2))
    assert by_code(result, "sendgrid.unreachable").category is Category.PROVIDER


async def test_findings_spell_sendgrid_as_its_display_name(env: Env) -> None:
    # Wording fix: the transport and status-page summaries said "Sendgrid" (the provider's
    # name capitalised); they now use the probe's traits.
    result = await env.run("hanging", probe_timeout=0.3)
    assert by_code(result, "sendgrid.timeout").summary.startswith("SendGrid: no answer")
    assert by_code(result, "sendgrid.platform_operational").summary.startswith("SendGrid reports")


async def test_status_page_incident_is_a_provider_finding(env: Env) -> None:
    env.pages.set_scenario("incident", "sendgrid", {"component": "Mail Sending"})
    result = await env.run("ok")
    finding = by_code(result, "sendgrid.platform_incident")
    assert finding.status is Status.DEGRADED
    assert finding.category is Category.PROVIDER


async def test_low_rate_budget_skips_stats_and_says_so(env: Env) -> None:
    await env.run("ok")
    calls_when_healthy = env.sim.requests
    env.sim.reset()
    result = await env.run("low_rate_budget", params={"remaining": 20})
    assert env.sim.requests < calls_when_healthy
    finding = by_code(result, "sendgrid.rate_budget_low")
    assert finding.status is Status.UNKNOWN
    assert finding.check == "delivery"
    assert "10%" in finding.summary
    assert result.status is Status.OK
    assert not [f for f in result.findings if f.code.startswith("sendgrid.delivery_")]


@pytest.mark.parametrize("remaining", [0, 10, 25, 35, 45, 599])
async def test_optional_calls_stay_within_the_rate_limit_share(env: Env, remaining: int) -> None:
    """Key, credits and sender always run (3 calls); stats only within 10% of what was left."""
    await env.run("low_rate_budget", params={"remaining": remaining}, rate_limit_share=0.1)
    mandatory = 3
    assert env.sim.requests == mandatory or env.sim.requests <= 0.1 * (remaining + 1)


@pytest.mark.parametrize("scenario", sorted(SendGridSim.scenarios | COMMON_SCENARIOS - {"slow"}))
async def test_planted_api_key_never_appears_in_findings_or_logs(
    env: Env, scenario: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    result = await env.run(scenario, probe_timeout=0.3 if scenario == "hanging" else 5.0)
    assert leaks(result, caplog.text, [KEY, KEY.split(".")[1]]) == []


async def test_mail_send_only_key_cannot_show_sender_or_stats_and_says_so(env: Env) -> None:
    result = await env.run("restricted_key")
    unknown = [f for f in result.findings if f.code == "sendgrid.check_forbidden"]
    assert {f.check for f in unknown} == {"account", "sender", "delivery"}
    assert all(f.status is Status.UNKNOWN for f in unknown)
    assert by_code(result, "sendgrid.key_ok").status is Status.OK
    assert result.status is Status.OK


async def test_forbidden_account_fails_as_account_not_auth(env: Env) -> None:
    result = await env.run("access_forbidden")
    finding = by_code(result, "sendgrid.access_forbidden")
    assert finding.status is Status.FAILING
    assert finding.category is Category.ACCOUNT
    assert not [f for f in result.findings if f.code.startswith("sendgrid.auth_")]


async def test_html_from_a_proxy_is_a_bad_response_not_an_auth_problem(env: Env) -> None:
    async def captive_portal(request: web.Request) -> web.Response:
        return web.Response(text="<html>Sign in to the Wi-Fi</html>", content_type="text/html")

    async with serve(routes=[web.get("/v3/scopes", captive_portal)]) as proxy:
        integration = make_integration(
            "sendgrid",
            proxy,
            {"api_key": KEY},
            SendGridOptions(from_email=FROM, statuspage_url=f"{proxy}/nowhere"),
        )
        async with asyncio.timeout(10):
            result = await probing.check(SendGridProbe(), integration, make_ctx(env.session))
    finding = by_code(result, "sendgrid.bad_response")
    assert finding.category is Category.PROVIDER
    assert finding.status is Status.FAILING
    assert by_code(result, "sendgrid.statuspage_unavailable").status is Status.UNKNOWN
    assert not [f for f in result.findings if f.category is Category.ACCOUNT]


async def test_a_late_step_that_hangs_keeps_the_earlier_findings(env: Env) -> None:
    """The steps share one deadline: a hanging stats call is that check's timeout."""

    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    routes = [r for r in env.sim.routes() if r.path != "/v3/stats"]
    async with serve(routes=[*routes, web.get("/v3/stats", hang)]) as base:
        integration = make_integration(
            "sendgrid",
            base,
            {"api_key": KEY},
            SendGridOptions(from_email=FROM, statuspage_url=f"{base}/nowhere"),
        )
        async with asyncio.timeout(10):
            result = await probing.check(
                SendGridProbe(), integration, make_ctx(env.session, timeout=2.0)
            )
    assert by_code(result, "sendgrid.key_ok").status is Status.OK
    assert by_code(result, "sendgrid.sender_verified").status is Status.OK
    timeout = by_code(result, "sendgrid.timeout")
    assert timeout.check == "delivery"
    assert timeout.category is Category.PROVIDER


async def test_steps_share_one_deadline_rather_than_one_each(env: Env) -> None:
    """Three calls of 0.4s each cannot all fit in a 1s probe, though each fits alone."""
    result = await env.run("slow", params={"delay": 0.4}, probe_timeout=1.0)
    assert by_code(result, "sendgrid.timeout").status is Status.UNREACHABLE


def test_probe_is_registered_under_its_provider_name() -> None:
    (ep,) = [e for e in entry_points(group="healthd.probes") if e.name == "sendgrid"]
    assert ep.load() is SendGridProbe


@pytest.mark.parametrize("hangs", ["api", "status_page"])
async def test_probe_answers_before_the_runner_cuts_it_off(env: Env, hangs: str) -> None:
    """The runner keeps nothing of a run it cuts off at ctx.timeout; the probe ends first."""

    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    if hangs == "api":
        env.sim.set_scenario("hanging", KEY)
    async with serve(routes=[web.get("/hang", hang)]) as other:
        page = f"{other}/hang" if hangs == "status_page" else f"{env.base}/nowhere"
        options = SendGridOptions(from_email=FROM, statuspage_url=page)
        integration = make_integration("sendgrid", env.base, {"api_key": KEY}, options)
        # Its 10% share (0.6 s) is the margin (0.3 s proved too little on a loaded host),
        # and 5.4 s is above aiohttp's 5 s ceil_threshold, which must not round it up.
        ctx = make_ctx(env.session, timeout=6.0)
        async with asyncio.timeout(ctx.timeout):  # as healthd.runner does
            result = await probing.check(SendGridProbe(), integration, ctx)
    expected = "sendgrid.timeout" if hangs == "api" else "sendgrid.statuspage_unavailable"
    assert by_code(result, expected).category in (Category.PROVIDER, Category.UNKNOWN)


async def test_a_mailbox_provider_incident_degrades_at_most(env: Env) -> None:
    env.pages.set_scenario(
        "incident", "sendgrid", {"component": "Gmail", "component_status": "major_outage"}
    )
    result = await env.run("ok")
    finding = by_code(result, "sendgrid.platform_peripheral_incident")
    assert finding.status is Status.DEGRADED and "Gmail (Mailbox Providers)" in finding.summary


async def test_out_of_credits_401_is_told_apart_from_a_wrong_key(env: Env) -> None:
    # Every call answers 401 "Maximum credits exceeded" but the credit balance, which
    # gives the reset date.
    result = await env.run(
        "credits_exhausted", params={"refuse_reads": True, "next_reset": "2026-12-02"}
    )
    finding = by_code(result, "sendgrid.credits_exhausted")
    assert finding.status is Status.FAILING and finding.category is Category.ACCOUNT
    assert "2026-12-02" in finding.summary and "Upgrade" in finding.remediation
    assert RECONNECT not in finding.remediation
    assert not [f for f in result.findings if f.code.startswith("sendgrid.auth_")]


async def test_used_up_credits_fail_while_the_api_still_answers(env: Env) -> None:
    result = await env.run("credits_exhausted", params={"total": 100})
    finding = by_code(result, "sendgrid.credits_exhausted")
    assert finding.status is Status.FAILING and "all 100" in finding.summary
    assert by_code(result, "sendgrid.key_ok").status is Status.OK


async def test_credits_left_are_ok(env: Env) -> None:
    result = await env.run("ok")
    assert by_code(result, "sendgrid.credits_ok").summary.startswith("38450 of 50000")


async def test_without_from_email_a_verified_sender_on_the_account_is_enough(env: Env) -> None:
    result = await env.run("ok", from_email=None)
    finding = by_code(result, "sendgrid.sender_available")
    assert finding.status is Status.OK and "1 verified single sender" in finding.summary


async def test_without_from_email_an_account_without_any_sender_fails(env: Env) -> None:
    result = await env.run("no_senders", from_email=None)
    finding = by_code(result, "sendgrid.no_verified_sender")
    assert finding.status is Status.FAILING and finding.category is Category.SENDER_CONFIG
    assert result.status is Status.FAILING


def test_the_readme_documents_the_default_core_components() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text("utf-8")
    documented = json.dumps(list(SendGridOptions().statuspage_components))
    assert f"| sendgrid | `{documented}` |" in readme


async def test_a_valid_key_refused_the_credit_balance_is_not_checked_not_wrong(
    env: Env,
) -> None:
    # /v3/scopes answered 200, so a 401 "authorization required" on the credit balance is
    # a key without that scope, not a wrong key.
    result = await env.run("restricted_key", params={"read_status": 401})
    credits = [f for f in result.findings if f.check == "account"]
    assert [(f.code, f.status) for f in credits] == [("sendgrid.check_forbidden", Status.UNKNOWN)]
    assert by_code(result, "sendgrid.key_ok").status is Status.OK

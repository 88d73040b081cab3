"""The SendGrid and Google catalogue entries: the product's wording, and full coverage of
every code the email probes can put in a finding."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import probes.google
import probes.sendgrid
from healthd import probing
from healthd.catalog import Catalog
from healthd.model import Category, Finding
from healthd.sim.base import COMMON_SCENARIOS, ProviderSim
from healthd.sim.google import GoogleSim
from healthd.sim.sendgrid import SendGridSim
from healthd.sim.statuspage import StatusPageSim
from probes.google import GoogleOptions, GoogleProbe
from probes.sendgrid import SendGridOptions, SendGridProbe
from tests._shared import shared_file
from tests.email_support import NOW, make_ctx, make_integration, serve, shared_catalog

PROBE_SOURCES = [Path(probes.sendgrid.__file__), Path(probes.google.__file__)]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return shared_catalog()


# --- the product's help page (seed 000, "Email via SendGrid or Google") -------------------


def test_seed_401_is_an_account_problem_with_reconnect_fix(catalog: Catalog) -> None:
    entry = catalog.lookup("sendgrid", "401")
    assert entry.category is Category.ACCOUNT
    assert "The API key is wrong. Reconnect the integration." in entry.fix


def test_seed_403_is_sender_config_with_finish_sender_authentication(catalog: Catalog) -> None:
    entry = catalog.lookup("sendgrid", "403")
    assert entry.category is Category.SENDER_CONFIG
    assert "SendGrid sender is not verified. Finish sender authentication" in entry.fix


def test_seed_bounce_is_a_recipient_problem_that_never_counts_against_health(
    catalog: Catalog,
) -> None:
    entry = catalog.lookup("sendgrid", "sendgrid.bounces")
    assert entry.category is Category.RECIPIENT
    assert not entry.counts_against_health
    assert "the recipient's mailbox is bad" in entry.meaning
    assert "Update the lead's email" in entry.fix


@pytest.mark.parametrize("code", ["sendgrid.auth_invalid", "sendgrid.auth_missing"])
def test_both_kinds_of_401_keep_the_seed_fix(catalog: Catalog, code: str) -> None:
    entry = catalog.lookup("sendgrid", code)
    assert entry.category is Category.ACCOUNT
    assert entry.fix.startswith("The API key is wrong. Reconnect the integration.")


def test_invalid_grant_says_reconnect_the_google_account(catalog: Catalog) -> None:
    for code in ("invalid_grant", "google.auth_invalid"):
        entry = catalog.lookup("google", code)
        assert entry.category is Category.ACCOUNT
        assert "Reconnect the Google account" in entry.fix


def test_every_published_bounce_classification_is_catalogued(catalog: Catalog) -> None:
    text = shared_file("specs", "sendgrid", "tsg_suppressions_v3.json").read_text("utf-8")
    enum = next(e for e in re.findall(r'"enum":\s*(\[[^\]]*\])', text) if "Invalid Address" in e)
    for classification in json.loads(enum):
        assert catalog.get("sendgrid", classification) is not None, classification


@pytest.mark.parametrize(
    ("code", "category"),
    [
        ("Invalid Address", Category.RECIPIENT),
        ("Mailbox Unavailable", Category.RECIPIENT),
        ("Reputation", Category.SENDER_CONFIG),
        ("5.1.1", Category.RECIPIENT),
        ("5.7.1", Category.SENDER_CONFIG),
        ("sendgrid.block_rate_high", Category.SENDER_CONFIG),
    ],
)
def test_bounces_are_the_recipients_and_blocks_the_senders(
    catalog: Catalog, code: str, category: Category
) -> None:
    assert catalog.lookup("sendgrid", code).category is category


@pytest.mark.parametrize(
    ("provider", "code"),
    [
        ("sendgrid", "429"),
        ("sendgrid", "sendgrid.rate_limited"),
        ("sendgrid", "sendgrid.server_error"),
        ("google", "rateLimitExceeded"),
        ("google", "userRateLimitExceeded"),
        ("google", "google.server_error"),
    ],
)
def test_rate_limits_and_server_errors_are_the_providers_and_retryable(
    catalog: Catalog, provider: str, code: str
) -> None:
    entry = catalog.lookup(provider, code)
    assert entry.category is Category.PROVIDER
    assert entry.retryable


def test_every_email_entry_has_a_title_meaning_and_fix(catalog: Catalog) -> None:
    entries = [e for e in catalog if e.provider in ("sendgrid", "google")]
    assert len(entries) > 50
    for entry in entries:
        assert entry.title and entry.meaning and entry.fix, (entry.provider, entry.code)


# --- coverage: every code a probe emits is in the catalogue ---------------------------------


def test_every_code_literal_in_the_probes_is_catalogued(catalog: Catalog) -> None:
    """Catches codes no scenario reaches (a garbled answer, an odd status)."""
    for source in PROBE_SOURCES:
        provider = source.stem
        text = source.read_text("utf-8")
        codes = set(re.findall(rf'"({provider}\.[a-z_]+)"', text))
        assert codes, source
        missing = sorted(c for c in codes if catalog.get(provider, c) is None)
        assert missing == [], f"{source}: {missing}"


def _all_scenarios(sim: type[ProviderSim]) -> list[str]:
    return sorted(sim.scenarios | COMMON_SCENARIOS - {"slow"})


async def _sweep_sendgrid(session: aiohttp.ClientSession) -> list[Finding]:
    sim, pages = SendGridSim(), StatusPageSim()
    findings: list[Finding] = []
    async with serve(sim, pages) as base:
        page = f"{base}/status/sendgrid/api/v2/summary.json"
        variants: list[tuple[str, dict[str, Any], str]] = [
            (s, {"from_email": "sales@example.com", "statuspage_url": page}, "SG.k")
            for s in _all_scenarios(SendGridSim)
        ]
        variants += [
            ("ok", {"statuspage_url": f"{base}/nowhere"}, "SG.k"),
            ("ok", {"from_email": "sales@example.com", "statuspage_url": page}, ""),
            ("blocks_spike", {"min_requests": 10**6, "statuspage_url": page}, "SG.k"),
        ]
        pages.set_scenario("incident", "sendgrid", {"component": "API"})
        for scenario, options, key in variants:
            sim.set_scenario(scenario, key or "*")
            integration = make_integration(
                "sendgrid", base, {"api_key": key}, SendGridOptions(**options)
            )
            ctx = make_ctx(session, timeout=0.3 if scenario == "hanging" else 5.0)
            async with asyncio.timeout(10):
                findings += (await probing.check(SendGridProbe(), integration, ctx)).findings
    return findings


async def _sweep_google(session: aiohttp.ClientSession) -> list[Finding]:
    sim = GoogleSim()
    findings: list[Finding] = []
    async with serve(sim) as base:
        creds = {"client_id": "cid", "client_secret": "cs", "refresh_token": "rt"}
        alias = {"send_as": "team@example.com"}
        variants: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = [
            (s, alias, None) for s in _all_scenarios(GoogleSim)
        ]
        variants += [
            ("server_error", alias, {"endpoint": "token"}),
            ("ok", {"testing_mode": True}, None),
            *(
                ("ok", {"testing_mode": True, "refresh_token_issued_at": NOW - age}, None)
                for age in (timedelta(days=6), timedelta(days=8))
            ),
        ]
        for scenario, options, params in variants:
            sim.set_scenario(scenario, "cid", params)
            opts = GoogleOptions(token_url=f"{base}/token", **options)
            integration = make_integration("google", base, creds, opts)
            ctx = make_ctx(session, timeout=0.3 if scenario == "hanging" else 5.0)
            async with asyncio.timeout(10):
                findings += (await probing.check(GoogleProbe(), integration, ctx)).findings
    return findings


async def test_every_code_the_probes_emit_across_all_scenarios_is_catalogued(
    catalog: Catalog,
) -> None:
    async with aiohttp.ClientSession() as session:
        swept = {
            "sendgrid": await _sweep_sendgrid(session),
            "google": await _sweep_google(session),
        }
    for provider, findings in swept.items():
        seen = {f.code for f in findings}
        missing = sorted(c for c in seen if catalog.get(provider, c) is None)
        assert missing == [], f"{provider}: {missing}"
        # Nothing fell through to catalog_finding's "not in the catalogue" fallback.
        assert not [f for f in findings if "Not in healthd's catalogue" in f.remediation]
    # The sweep really reached the failure paths, not only the happy one.
    assert {"sendgrid.auth_invalid", "sendgrid.rate_budget_low"} <= {
        f.code for f in swept["sendgrid"]
    }
    assert {"google.auth_invalid", "google.refresh_token_expired"} <= {
        f.code for f in swept["google"]
    }

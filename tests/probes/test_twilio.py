"""The Twilio probe against the Twilio simulator on loopback, one scenario per finding."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from healthd import probing
from healthd.catalog import Catalog, parse
from healthd.clock import Clock, FakeClock, SystemClock
from healthd.http import SharedAnswers
from healthd.interfaces import DeliverySink, PollCursor, ProbeContext
from healthd.model import (
    Category,
    DeliveryOutcome,
    DeliveryStage,
    Integration,
    ProbeResult,
    Status,
    Thresholds,
)
from healthd.sim.statuspage import StatusPageSim, component_id
from healthd.sim.twilio import LOCAL_NUMBER, TOLLFREE_NUMBER, TwilioSim, service_sid
from probes.twilio import TwilioOptions, TwilioProbe

CATALOG_FILE = Path(__file__).resolve().parents[2] / "healthd" / "catalog" / "twilio.yaml"
ACCOUNT = "AC" + "0123456789abcdef" * 2
PLANTED = "planted-auth-token-7f3e9c1b5d"


class FakeSecret:
    """Stands in for healthd's Secret: masked when printed, revealed on request."""

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__


class Sink:
    """The delivery ledger's side of `DeliverySink`: keeps what the probe reported, and
    its poll cursor, as the ledger does."""

    def __init__(self) -> None:
        self.outcomes: list[DeliveryOutcome] = []
        self.cursors: dict[str, datetime] = {}

    def submit(
        self, outcomes: Sequence[DeliveryOutcome], *, cursor: PollCursor | None = None
    ) -> bool:
        self.outcomes.extend(outcomes)
        if cursor is not None:
            self.cursors[cursor.integration_id] = cursor.until
        return True

    def polled_until(self, integration_id: str) -> datetime | None:
        return self.cursors.get(integration_id)


@dataclass
class Harness:
    twilio: TwilioSim
    statuspage: StatusPageSim
    base_url: str
    session: aiohttp.ClientSession
    catalog: Catalog
    requests_sent: list[str]

    def set(self, scenario: str, **params: Any) -> None:
        self.twilio.set_scenario(scenario, ACCOUNT, {"auth_token": PLANTED, **params})

    async def reported(self, **options: Any) -> tuple[ProbeResult, list[DeliveryOutcome]]:
        """One run, and the outcomes it handed to the delivery ledger."""
        sink = Sink()
        result = await self.check(deliveries=sink, **options)
        return result, sink.outcomes

    async def check(
        self,
        *,
        token: str = PLANTED,
        deadline: float = 5.0,
        last_checked: datetime | None = None,
        base_url: str | None = None,
        shared: SharedAnswers | None = None,
        deliveries: DeliverySink | None = None,
        clock: Clock | None = None,
        **options: Any,
    ) -> ProbeResult:
        opts = {
            "messaging_base_url": self.base_url,
            "monitor_base_url": self.base_url,
            "senders": [LOCAL_NUMBER, TOLLFREE_NUMBER],
            "messaging_service_sid": service_sid(ACCOUNT),
            "statuspage_url": self.base_url + "/status/twilio/api/v2/summary.json",
            **options,
        }
        integration = Integration(
            id="twilio-acme",
            provider="twilio",
            tenant="acme",
            base_url=base_url or self.base_url,
            page=False,
            interval=timedelta(minutes=1),
            timeout=timedelta(seconds=deadline),
            thresholds=Thresholds(),
            credentials={"account_sid": FakeSecret(ACCOUNT), "auth_token": FakeSecret(token)},
            options=TwilioOptions(**opts),
        )
        ctx = ProbeContext(
            session=self.session,
            clock=clock or SystemClock(),
            catalog=self.catalog,
            timeout=deadline,
            last_checked=last_checked,
            shared=shared,
            deliveries=deliveries,
        )
        async with asyncio.timeout(deadline + 5):
            return await probing.check(TwilioProbe(), integration, ctx)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    twilio, statuspage = TwilioSim(), StatusPageSim()
    app = web.Application()
    app.add_routes(twilio.routes())
    app.add_routes(statuspage.routes())
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    sent: list[str] = []

    async def on_request_start(
        session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestStartParams
    ) -> None:
        sent.append(params.url.path)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    catalog = Catalog(parse(yaml.safe_load(CATALOG_FILE.read_text("utf-8")), CATALOG_FILE.name))
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        yield Harness(
            twilio, statuspage, str(server.make_url("")).rstrip("/"), session, catalog, sent
        )
    await server.close()


def finding(result: ProbeResult, code: str, provider_code: str | None = None) -> Any:
    found = [
        f
        for f in result.findings
        if f.code == code and (provider_code is None or f.provider_code == provider_code)
    ]
    assert found, (
        f"no {code}/{provider_code} in {[(f.code, f.provider_code) for f in result.findings]}"
    )
    return found[0]


# scenario, params -> code, provider code, category, finding status, words of the remediation
SCENARIOS = [
    (
        "revoked_token",
        {},
        "twilio.auth_invalid",
        "20003",
        "account",
        "failing",
        "Reconnect the integration",
    ),
    (
        "suspended",
        {},
        "twilio.account_suspended",
        "30002",
        "account",
        "failing",
        "Contact Twilio Support",
    ),
    ("closed", {}, "twilio.account_closed", None, "account", "failing", "live Twilio account"),
    (
        "number_without_sms",
        {},
        "twilio.sender_not_sms_capable",
        "21661",
        "sender_config",
        "failing",
        "SMS-capable",
    ),
    (
        "number_not_owned",
        {},
        "twilio.sender_not_owned",
        "21606",
        "sender_config",
        "failing",
        "belongs to this account",
    ),
    (
        "empty_pool",
        {},
        "twilio.service_no_senders",
        "21704",
        "sender_config",
        "failing",
        "sender pool",
    ),
    (
        "campaign_suspended",
        {},
        "twilio.campaign_suspended",
        "30033",
        "sender_config",
        "failing",
        "Contact Support",
    ),
    (
        "campaign_pending",
        {},
        "twilio.campaign_pending",
        "30034",
        "sender_config",
        "degraded",
        "24 hours",
    ),
    ("brand_failed", {}, "twilio.brand_failed", None, "sender_config", "failing", "resubmit"),
    (
        "tollfree_unverified",
        {},
        "twilio.tollfree_rejected",
        "30032",
        "sender_config",
        "failing",
        "resubmit",
    ),
    (
        "tollfree_unverified",
        {"status": "PENDING_REVIEW"},
        "twilio.tollfree_pending",
        "30032",
        "sender_config",
        "degraded",
        "review",
    ),
    (
        "tollfree_unverified",
        {"status": "none"},
        "twilio.tollfree_unverified",
        "30032",
        "sender_config",
        "failing",
        "Submit a toll-free verification",
    ),
    (
        "filtering_spike",
        {},
        "twilio.delivery_errors",
        "30007",
        "content",
        "degraded",
        "STOP language",
    ),
    ("optout_trickle", {}, "twilio.delivery_errors", "21610", "recipient", "ok", "reply START"),
    ("optout_trickle", {}, "twilio.delivery_errors", "21211", "recipient", "ok", "E.164"),
    ("server_error", {}, "twilio.server_error", "20500", "provider", "failing", "Status Page"),
    ("rate_limited", {}, "twilio.rate_limited", "20429", "provider", "degraded", "next run"),
]


@pytest.mark.parametrize(
    ("scenario", "params", "code", "provider_code", "category", "status", "fix"),
    SCENARIOS,
    ids=[f"{s[0]}-{s[2]}-{s[3]}" for s in SCENARIOS],
)
async def test_scenario_gives_its_finding(
    harness: Harness,
    scenario: str,
    params: dict[str, Any],
    code: str,
    provider_code: str | None,
    category: str,
    status: str,
    fix: str,
) -> None:
    harness.set(scenario, **params)
    result = await harness.check()
    found = finding(result, code, provider_code)
    assert found.category == Category(category)
    assert found.status == Status(status)
    assert fix in found.remediation
    assert result.status == Status.worst([f.status for f in result.findings])


async def test_healthy_account_is_ok_with_every_step_reported(harness: Harness) -> None:
    harness.set("ok")
    result = await harness.check()
    assert result.status is Status.OK
    codes = {f.code for f in result.findings}
    assert codes == {
        "twilio.account_active",
        "twilio.senders_ok",
        "twilio.service_pool_ok",
        "twilio.a2p_registered",
        "twilio.tollfree_verified",
        "twilio.delivery_ok",
        "twilio.platform_operational",
    }


async def test_revoked_token_is_auth_invalid_and_skips_the_account_steps(harness: Harness) -> None:
    harness.set("revoked_token")
    result = await harness.check()
    assert result.status is Status.FAILING
    assert [f.code for f in result.findings] == [
        "twilio.auth_invalid",
        "twilio.platform_operational",
    ]
    assert [p for p in harness.requests_sent if p.startswith(("/2010", "/v1"))] == [
        f"/2010-04-01/Accounts/{ACCOUNT}.json"
    ]


async def test_wrong_token_is_auth_invalid_with_reconnect_fix(harness: Harness) -> None:
    harness.set("ok")
    result = await harness.check(token="not-the-token")
    found = finding(result, "twilio.auth_invalid", "20003")
    assert found.remediation.startswith("The API key is wrong. Reconnect the integration")


@pytest.mark.parametrize("scenario", ["server_error", "rate_limited"])
async def test_provider_side_errors_are_never_auth_invalid(harness: Harness, scenario: str) -> None:
    harness.set(scenario)
    result = await harness.check()
    assert all(f.code != "twilio.auth_invalid" for f in result.findings)
    assert result.findings[0].category is Category.PROVIDER


async def test_hanging_api_is_a_bounded_provider_timeout(harness: Harness) -> None:
    harness.set("hanging")
    result = await harness.check(deadline=0.5)
    found = finding(result, "twilio.timeout")
    assert found.category is Category.PROVIDER
    assert found.network_error
    assert result.status is Status.UNREACHABLE
    assert all(f.code != "twilio.auth_invalid" for f in result.findings)


async def test_refused_connection_is_unreachable_not_auth(harness: Harness) -> None:
    harness.set("ok")
    result = await harness.check(base_url="http://127.0.0.1:9")
    found = finding(result, "twilio.unreachable")
    assert found.category is Category.PROVIDER
    assert result.status is Status.UNREACHABLE


async def test_status_page_incident_is_a_provider_finding_beside_the_others(
    harness: Harness,
) -> None:
    harness.set("ok")
    harness.statuspage.set_scenario("incident", "twilio", {"component": "SMS"})
    result = await harness.check()
    found = finding(result, "twilio.platform_incident")
    assert found.category is Category.PROVIDER
    assert found.status is Status.DEGRADED
    assert "twilio.account_active" in {f.code for f in result.findings}


@pytest.mark.parametrize("component", ["AT&T - SMS", "Verizon Wireless - MMS", "Brazil SMS"])
async def test_a_carrier_or_country_outage_degrades_at_most(
    harness: Harness, component: str
) -> None:
    # The realistic page: a carrier's or a country's component in major outage, with an
    # open incident on it, while SMS and MMS themselves are operational.
    harness.set("ok")
    harness.statuspage.set_scenario(
        "incident", "twilio", {"component": component, "component_status": "major_outage"}
    )
    result = await harness.check()
    found = finding(result, "twilio.platform_peripheral_incident")
    assert found.status is Status.DEGRADED and found.category is Category.PROVIDER
    assert component in found.summary
    assert result.status is Status.DEGRADED


async def test_maintenance_on_sms_is_shown_but_never_fails(harness: Harness) -> None:
    harness.set("ok")
    harness.statuspage.set_scenario("maintenance", "twilio", {"component": "SMS"})
    result = await harness.check()
    found = finding(result, "twilio.platform_operational")
    assert found.status is Status.OK and "maintenance in progress: SMS" in found.summary
    assert result.status is Status.OK


async def test_an_outage_of_the_core_messaging_component_fails_as_provider(
    harness: Harness,
) -> None:
    harness.set("ok")
    harness.statuspage.set_scenario(
        "incident", "twilio", {"component": "SMS", "component_status": "major_outage"}
    )
    result = await harness.check()
    found = finding(result, "twilio.platform_incident")
    assert found.status is Status.FAILING and found.category is Category.PROVIDER
    assert result.status is Status.FAILING


@pytest.mark.parametrize(
    "core", [[component_id("twilio", "AT&T - SMS")], ["AT&T - SMS"], ["US Carriers"]]
)
async def test_core_components_are_named_by_id_exact_name_or_group(
    harness: Harness, core: list[str]
) -> None:
    harness.set("ok")
    harness.statuspage.set_scenario(
        "incident", "twilio", {"component": "AT&T - SMS", "component_status": "major_outage"}
    )
    result = await harness.check(statuspage_components=core)
    assert finding(result, "twilio.platform_incident").status is Status.FAILING


async def test_core_names_match_exactly_not_as_substrings(harness: Harness) -> None:
    harness.set("ok")
    harness.statuspage.set_scenario(
        "incident", "twilio", {"component": "Toll-Free SMS", "component_status": "major_outage"}
    )
    result = await harness.check(statuspage_components=["SMS"])
    assert finding(result, "twilio.platform_peripheral_incident").status is Status.DEGRADED


async def test_core_names_missing_from_the_page_are_said(harness: Harness) -> None:
    harness.set("ok")
    result = await harness.check(statuspage_components=["SMS", "Programmable SMS"])
    found = finding(result, "twilio.platform_operational")
    assert found.summary.endswith("not on the page: Programmable SMS")


# A2P 10DLC of plain senders (`senders:` without a Messaging Service, the shipped form).
PLAIN = {"senders": [LOCAL_NUMBER], "messaging_service_sid": None}


def survey_calls(harness: Harness) -> list[str]:
    return [p for p in harness.requests_sent if p.startswith("/v1/Services")]


async def test_a_plain_us_long_code_in_a_verified_campaign_is_registered(
    harness: Harness,
) -> None:
    harness.set("ok")
    result = await harness.check(**PLAIN)
    found = finding(result, "twilio.a2p_registered")
    assert found.status is Status.OK and found.summary.startswith("1 US long code")


@pytest.mark.parametrize(
    ("scenario", "where"),
    [("empty_pool", "is in no Messaging Service"), ("no_campaign", "has no A2P 10DLC campaign")],
)
async def test_a_plain_us_long_code_without_a_campaign_fails_with_30034(
    harness: Harness, scenario: str, where: str
) -> None:
    harness.set(scenario)
    result = await harness.check(**PLAIN)
    found = finding(result, "twilio.a2p_unregistered", "30034")
    assert found.status is Status.FAILING and found.category is Category.SENDER_CONFIG
    assert LOCAL_NUMBER in found.summary and where in found.summary
    assert result.status is Status.FAILING


async def test_a_plain_sender_in_a_suspended_campaign_is_named(harness: Harness) -> None:
    harness.set("campaign_suspended")
    result = await harness.check(**PLAIN)
    found = finding(result, "twilio.campaign_suspended", "30033")
    assert found.status is Status.FAILING and LOCAL_NUMBER in found.summary


async def test_the_survey_reads_at_most_a2p_max_services(harness: Harness) -> None:
    # The sender's service is the 31st: beyond the first 20 read, so it is not judged.
    harness.set("ok", extra_services=30)
    result = await harness.check(a2p_max_services=20, **PLAIN)
    assert finding(result, "twilio.a2p_not_checked").status is Status.UNKNOWN
    assert len(survey_calls(harness)) == 1 + 20


async def test_the_survey_is_kept_across_runs_for_a2p_every(harness: Harness) -> None:
    harness.set("ok")
    clock = FakeClock()
    shared = SharedAnswers(clock)
    await harness.check(shared=shared, **PLAIN)
    first = len(survey_calls(harness))
    clock.advance(timedelta(minutes=14))
    kept = await harness.check(shared=shared, **PLAIN)
    assert len(survey_calls(harness)) == first == 3  # the services, one pool, its campaign
    assert finding(kept, "twilio.a2p_registered").status is Status.OK
    clock.advance(timedelta(minutes=2))
    await harness.check(shared=shared, **PLAIN)
    assert len(survey_calls(harness)) == 2 * first


async def test_recipient_errors_alone_however_many_keep_the_result_ok(harness: Harness) -> None:
    harness.set("optout_trickle", count=300, rate=0.95, spacing=5)
    result = await harness.check()
    errors = [f for f in result.findings if f.code == "twilio.delivery_errors"]
    assert sum(f.count or 0 for f in errors) >= 250
    assert {f.category for f in errors} == {Category.RECIPIENT}
    assert result.status is Status.OK


async def test_content_filtering_degrades_but_never_fails(harness: Harness) -> None:
    harness.set("filtering_spike", count=200, rate=0.9, spacing=5)
    result = await harness.check()
    assert finding(result, "twilio.delivery_errors", "30007").status is Status.DEGRADED
    assert result.status is Status.DEGRADED


async def test_a_few_filtered_messages_below_the_rate_stay_ok(harness: Harness) -> None:
    harness.set("filtering_spike", count=200, rate=0.02, spacing=5)
    result = await harness.check()
    assert finding(result, "twilio.delivery_errors", "30007").status is Status.OK


@pytest.mark.parametrize(
    ("rate", "status"), [(0.5, Status.FAILING), (0.05, Status.DEGRADED), (0.01, Status.OK)]
)
async def test_sender_errors_degrade_or_fail_past_the_rates(
    harness: Harness, rate: float, status: Status
) -> None:
    harness.set("filtering_spike", count=200, rate=rate, spacing=5, error_code=30034)
    found = finding(await harness.check(), "twilio.delivery_errors", "30034")
    assert found.category is Category.SENDER_CONFIG
    assert found.status is status


async def test_sender_errors_in_a_small_sample_degrade_but_never_fail(harness: Harness) -> None:
    harness.set("filtering_spike", count=10, rate=1.0, error_code=30034)
    found = finding(await harness.check(), "twilio.delivery_errors", "30034")
    assert found.count == 10
    assert found.status is Status.DEGRADED


@pytest.mark.parametrize("code", [30025, 30026])
async def test_codes_the_catalogue_says_do_not_count_leave_health_alone(
    harness: Harness, code: int
) -> None:
    # T-Mobile daily-limit warnings are sender_config, but the catalogue marks them
    # `counts_against_health: false`: one among a few must not degrade the integration.
    harness.set("filtering_spike", count=10, rate=0.1, error_code=code)
    result = await harness.check()
    found = finding(result, "twilio.delivery_errors", str(code))
    assert found.category is Category.SENDER_CONFIG
    assert found.status is Status.OK
    assert result.status is Status.OK


async def test_failed_and_undelivered_are_told_apart(harness: Harness) -> None:
    harness.set("optout_trickle")
    failed = finding(await harness.check(), "twilio.delivery_errors", "21610")
    assert "failed (never left Twilio)" in failed.summary
    assert "undelivered" not in failed.summary
    harness.set("filtering_spike")
    undelivered = finding(await harness.check(), "twilio.delivery_errors", "30007")
    assert "undelivered (carrier receipt)" in undelivered.summary
    assert "failed" not in undelivered.summary


async def test_each_code_keeps_at_most_three_example_sids(harness: Harness) -> None:
    harness.set("filtering_spike", count=100, rate=0.5)
    found = finding(await harness.check(), "twilio.delivery_errors", "30007")
    assert found.count == 50
    assert len(found.examples) == 3
    assert all(sid.startswith("SM") and len(sid) == 34 for sid in found.examples)


async def test_delivery_looks_back_over_the_whole_window_whatever_the_last_check(
    harness: Harness,
) -> None:
    harness.set("ok", count=100, spacing=60)
    since = datetime.now(UTC) - timedelta(minutes=10, seconds=30)
    result = await harness.check(last_checked=since, delivery_window=timedelta(minutes=30.5))
    assert finding(result, "twilio.delivery_ok").count == 30  # one a minute, for the window


async def test_rates_are_judged_over_the_window_at_100_messages_an_hour(
    harness: Harness,
) -> None:
    # 5 of 100 messages in the hour with a sender error (21703): 5 % is past the 2 % that
    # degrades. Each run, a minute after the previous one, judges the whole hour again.
    harness.set("filtering_spike", count=100, spacing=35, rate=0.05, error_code=21703)
    a_minute_ago = datetime.now(UTC) - timedelta(minutes=1)
    runs = [await harness.check(last_checked=a_minute_ago) for _ in range(3)]
    found = [finding(r, "twilio.delivery_errors", "21703") for r in runs]
    assert [(f.status, f.count, f.category) for f in found] == [
        (Status.DEGRADED, 5, Category.SENDER_CONFIG)
    ] * 3
    assert all("of 100 outbound" in f.summary for f in found)


async def test_every_polled_message_is_reported_to_the_ledger_with_its_status(
    harness: Harness,
) -> None:
    harness.set("late_receipts", count=10, spacing=60, late=2)
    sink = Sink()
    await harness.check(deliveries=sink)
    assert len(sink.outcomes) == 10
    assert {(o.status, o.stage) for o in sink.outcomes[:2]} == {("sent", DeliveryStage.PENDING)}
    assert {(o.status, o.stage) for o in sink.outcomes[2:]} == {("delivered", DeliveryStage.FINAL)}
    assert all(o.source == "poll" and o.message_id.startswith("SM") for o in sink.outcomes)


async def test_a_later_poll_hands_over_only_what_was_updated_since_the_last_less_the_overlap(
    harness: Harness,
) -> None:
    # Messages updated 118 s, 238 s, 358 s, ... ago. The first poll's cursor is the newest
    # (118 s ago); the next hands over what was updated after five minutes before that.
    harness.set("ok", count=10, spacing=120)
    sink = Sink()
    await harness.check(deliveries=sink)
    first = [o.message_id for o in sink.outcomes]
    sink.outcomes.clear()
    await harness.check(deliveries=sink)
    assert len(first) == 10
    assert [o.message_id for o in sink.outcomes] == first[:3]


async def test_a_poll_with_no_cursor_hands_over_the_whole_window(harness: Harness) -> None:
    harness.set("ok", count=10, spacing=120)
    sink = Sink()
    await harness.check(deliveries=sink)
    sink.outcomes.clear()
    sink.cursors.clear()  # a restart, a takeover, a refused submit
    await harness.check(deliveries=sink)
    assert len(sink.outcomes) == 10


async def test_a_provider_stamping_the_future_moves_the_cursor_no_further_than_now(
    harness: Harness,
) -> None:
    # healthd's clock an hour behind the simulator's: every record is stamped "later".
    behind = FakeClock(datetime.now(UTC) - timedelta(hours=1))
    harness.set("ok", count=3, spacing=120)
    sink = Sink()
    await harness.check(deliveries=sink, clock=behind, delivery_window=timedelta(hours=3))
    assert sink.cursors == {"twilio-acme": behind.now()}


async def test_a_late_21703_is_reported_as_a_sender_config_failure(harness: Harness) -> None:
    harness.set("late_receipts", count=3, late=1, receipt="failed", error_code=21703)
    sink = Sink()
    await harness.check(deliveries=sink)
    failed = [o for o in sink.outcomes if o.status == "failed"]
    assert [(o.provider_code, o.category) for o in failed] == [("21703", Category.SENDER_CONFIG)]


async def test_refused_message_requests_from_monitor_alerts_count_as_failures(
    harness: Harness,
) -> None:
    # Seed 001: an invalid request gets a 400 with a 2XXXX code and leaves no message
    # record; the Debugger's alert is all there is. 10 refused beside 90 messages.
    harness.set("ok", count=90, spacing=30, alerts=10, alert_code=21408, alert_spacing=30)
    result, outcomes = await harness.reported()
    found = finding(result, "twilio.delivery_errors", "21408")
    refused = [o for o in outcomes if o.status == "rejected"]

    assert (found.count, found.category, found.status) == (
        10,
        Category.SENDER_CONFIG,
        Status.FAILING,
    )
    assert "10 refused by the API (no message made) of 100 outbound" in found.summary
    assert len(found.examples) == 3 and all(sid.startswith("NO") for sid in found.examples)
    assert len({o.message_id for o in refused}) == 10
    assert {(o.stage, o.provider_code) for o in refused} == {(DeliveryStage.FINAL, "21408")}


async def test_alerts_about_messages_that_exist_are_left_to_the_message_read(
    harness: Harness,
) -> None:
    harness.set("ok", count=20, alerts=2, message_alerts=5)
    _, outcomes = await harness.reported()
    assert [o.provider_code for o in outcomes if o.status == "rejected"] == ["21211"] * 2


async def test_monitor_alerts_are_read_over_the_window_through_every_page(
    harness: Harness,
) -> None:
    harness.set("ok", count=0, alerts=30, alert_spacing=60)
    result = await harness.check(delivery_window=timedelta(minutes=20, seconds=30), page_size=7)
    found = finding(result, "twilio.delivery_errors", "21211")
    alert_pages = [p for p in harness.requests_sent if p.endswith("/v1/Alerts")]
    assert found.count == 20
    assert len(alert_pages) == 3


async def test_a_failing_alerts_read_leaves_the_message_read_standing(harness: Harness) -> None:
    harness.set("ok", count=20)
    result = await harness.check(monitor_base_url=harness.base_url + "/nowhere")
    assert finding(result, "twilio.delivery_ok").count == 20
    assert [f.check for f in result.findings if f.status is not Status.OK] == ["request_errors"]


async def test_delivery_window_bounds_the_look_back(harness: Harness) -> None:
    harness.set("ok", count=100, spacing=60)
    old = datetime.now(UTC) - timedelta(days=2)
    found = finding(
        await harness.check(last_checked=old, delivery_window=timedelta(minutes=20, seconds=30)),
        "twilio.delivery_ok",
    )
    assert found.count == 20


async def test_delivery_reads_at_most_max_pages(harness: Harness) -> None:
    harness.set("ok", count=100, spacing=10)
    result = await harness.check(page_size=10, max_pages=3)
    assert finding(result, "twilio.delivery_ok").count == 30
    message_pages = [p for p in harness.requests_sent if p.endswith("/Messages.json")]
    assert len(message_pages) == 3


async def test_every_request_goes_through_the_shared_session(harness: Harness) -> None:
    harness.set("ok")
    await harness.check()
    seen_by_sims = harness.twilio.requests + harness.statuspage.requests
    assert seen_by_sims == len(harness.requests_sent)
    assert harness.twilio.requests >= 7


SECRET_SCENARIOS = sorted(TwilioSim.scenarios | {"slow"})


@pytest.mark.parametrize("scenario", SECRET_SCENARIOS)
async def test_planted_token_never_appears_in_findings_or_logs(
    harness: Harness, scenario: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    harness.set(scenario, delay=0.05)
    result = await harness.check()
    text = repr(result) + repr(result.to_dict())
    assert PLANTED not in text
    assert PLANTED not in caplog.text
    assert all(PLANTED not in r.getMessage() for r in caplog.records)


async def test_planted_token_never_appears_when_the_api_hangs(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    harness.set("hanging")
    result = await harness.check(deadline=0.3)
    assert PLANTED not in repr(result.to_dict()) + caplog.text


@pytest.fixture
async def odd_twilio() -> AsyncIterator[str]:
    """A small fake whose list calls fail (the SDK's plain "Unable to fetch page") and whose
    Messaging Service answers with an RFC 9457 body (the SDK's TwilioServiceException)."""

    def classic(status: int, code: int) -> web.Response:
        return web.json_response(
            {"code": code, "message": "x", "more_info": "", "status": status}, status=status
        )

    async def account(request: web.Request) -> web.Response:
        return web.json_response({"sid": ACCOUNT, "status": "active"})

    async def messages(request: web.Request) -> web.Response:
        return classic(503, 20503)

    async def numbers(request: web.Request) -> web.Response:
        return classic(400, 20001)

    async def service(request: web.Request) -> web.Response:
        body = {"type": "https://www.twilio.com/docs/api/errors/20404", "title": "Not Found"}
        return web.json_response({**body, "status": 404, "code": 20404}, status=404)

    app = web.Application()
    app.router.add_get(f"/2010-04-01/Accounts/{ACCOUNT}.json", account)
    app.router.add_get(f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json", messages)
    app.router.add_get(f"/2010-04-01/Accounts/{ACCOUNT}/IncomingPhoneNumbers.json", numbers)
    app.router.add_get("/v1/Services/{sid}", service)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


async def test_list_and_rfc9457_errors_keep_twilio_codes(harness: Harness, odd_twilio: str) -> None:
    result = await harness.check(base_url=odd_twilio, messaging_base_url=odd_twilio)
    delivery = finding(result, "twilio.server_error", "20503")
    assert (delivery.check, delivery.category) == ("delivery", Category.PROVIDER)
    assert finding(result, "twilio.request_rejected", "20001").check == "sender"
    assert finding(result, "twilio.service_not_found", "21701").status is Status.FAILING
    assert all(f.code != "twilio.auth_invalid" for f in result.findings)


def test_the_readme_documents_the_default_core_components() -> None:
    readme = (CATALOG_FILE.parents[2] / "README.md").read_text("utf-8")
    documented = json.dumps(TwilioOptions().statuspage_components)
    assert f"| twilio | `{documented}` |" in readme

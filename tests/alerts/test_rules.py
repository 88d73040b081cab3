"""Alert rules as scripted sequences: set the world, evaluate, assert what would be sent.

`World` plays the store's part: it keeps the open incidents that `apply` records, as the
real store does, so a sequence of evaluations behaves like the running daemon.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from healthd.alerts.rules import AlertPlan, evaluate, rule_inputs
from healthd.alerts.settings import AlertingSettings, MaintenanceWindow
from healthd.model import (
    AlertEvent,
    Category,
    Finding,
    Incident,
    Integration,
    IntegrationState,
    ProbeResult,
    Severity,
    Status,
    Thresholds,
)
from healthd.secrets import Secret
from healthd.state import step
from probes.bridge import BridgeProbe
from probes.twilio import TwilioProbe

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BRIDGE_KEY = "healthd/bridge_unreachable/bridge-dc1"
# What config would set from the probe class: the rules read traits, never provider names.
TRAITS = {"imessage_bridge": BridgeProbe.traits, "twilio": TwilioProbe.traits}


def settings(**overrides: Any) -> AlertingSettings:
    data: dict[str, Any] = {
        "pagerduty": {"routing_key": Secret("k" * 32)},
        "status_url": "https://healthd.example.test",
    }
    data.update(overrides)
    return AlertingSettings.model_validate(data)


def integration(iid: str, provider: str, tenant: str = "platform", **kw: Any) -> Integration:
    return Integration(
        id=iid,
        provider=provider,
        tenant=tenant,
        base_url="https://127.0.0.1",
        page=kw.pop("page", False),
        interval=timedelta(minutes=1),
        timeout=timedelta(seconds=10),
        thresholds=kw.pop("thresholds", Thresholds()),
        traits=kw.pop("traits", TRAITS.get(provider)),
        **kw,
    )


def finding(
    code: str,
    category: Category,
    status: Status = Status.FAILING,
    network: bool = False,
    summary: str = "",
) -> Finding:
    return Finding(
        check="api",
        status=status,
        code=code,
        summary=summary or f"{code} happened",
        remediation=f"fix {code}",
        category=category,
        network_error=network,
    )


AUTH = finding("twilio.auth_invalid", Category.ACCOUNT, summary="The API key is wrong.")
HTTP_500 = finding("twilio.server_error", Category.PROVIDER)
TIMEOUT = finding("http.timeout", Category.PROVIDER, Status.UNREACHABLE, network=True)
OK = finding("ok", Category.UNKNOWN, Status.OK)
DEGRADED = finding("sendgrid.bounce_rate_high", Category.RECIPIENT, Status.DEGRADED)


class World:
    """Integrations, their states and latest results, and the open incidents."""

    def __init__(self, config: AlertingSettings | None = None) -> None:
        self.settings = config or settings()
        self.integrations: dict[str, Integration] = {}
        self.states: dict[str, IntegrationState] = {}
        self.results: dict[str, ProbeResult] = {}
        self.open: dict[str, Incident] = {}

    def add(self, item: Integration, *findings: Finding) -> None:
        self.integrations[item.id] = item
        self.set(item.id, *(findings or (OK,)))

    def set(self, iid: str, *findings: Finding, unreachable_since: datetime | None = None) -> None:
        """Both the debounced state and the latest result say what `findings` say."""
        result = ProbeResult.from_findings(
            integration_id=iid, started_at=T0, duration_seconds=0.1, findings=findings
        )
        self.results[iid] = result
        self.states[iid] = IntegrationState(
            integration_id=iid,
            status=result.status,
            since=T0,
            unreachable_since=unreachable_since,
            last_result_status=result.status,
        )

    def run(self, iid: str, *findings: Finding, at: datetime) -> None:
        """One probe run through the state machine, as the runner records it."""
        result = ProbeResult.from_findings(
            integration_id=iid, started_at=at, duration_seconds=0.1, findings=findings or (OK,)
        )
        prev = self.states.get(iid) or IntegrationState(integration_id=iid)
        self.states[iid], _ = step(prev, result, at, self.integrations[iid].thresholds)
        self.results[iid] = result

    def evaluate(self, now: datetime) -> AlertPlan:
        plan = evaluate(
            integrations=self.integrations,
            states=self.states,
            results=self.results,
            open_incidents=list(self.open.values()),
            settings=self.settings,
            now=now,
        )
        for incident in plan.opened:
            self.open[incident.dedup_key] = incident
        for key, _ in plan.resolved:
            del self.open[key]
        return plan


def sent(plan: AlertPlan, channel: str = "pagerduty") -> list[tuple[str, str]]:
    return [(e.action.value, e.dedup_key) for ch, e in plan.events if ch == channel]


def only_event(plan: AlertPlan) -> AlertEvent:
    [(_, event)] = plan.events
    return event


def bridge_world(**kw: Any) -> World:
    world = World(**kw)
    world.add(integration("bridge-dc1", "imessage_bridge", name="bridge-dc1"))
    return world


def bridge_down(world: World, since: datetime = T0) -> None:
    world.set("bridge-dc1", TIMEOUT, unreachable_since=since)


# --- bridge_unreachable ------------------------------------------------------------------


def test_bridge_unreachable_for_less_than_page_after_pages_nothing():
    world = bridge_world()
    bridge_down(world)
    assert world.evaluate(T0 + timedelta(minutes=9, seconds=59)).empty
    assert world.evaluate(T0 + timedelta(minutes=10)).empty


def test_bridge_unreachable_longer_than_page_after_triggers_once_and_resolves_once():
    world = bridge_world()
    bridge_down(world)

    first = world.evaluate(T0 + timedelta(minutes=10, seconds=1))
    assert sent(first) == [("trigger", BRIDGE_KEY)]
    assert [i.dedup_key for i in first.opened] == [BRIDGE_KEY]

    assert world.evaluate(T0 + timedelta(minutes=15)).empty  # still down: nothing new

    world.set("bridge-dc1", OK)
    back = world.evaluate(T0 + timedelta(minutes=16))
    assert sent(back) == [("resolve", BRIDGE_KEY)]
    assert back.resolved == ((BRIDGE_KEY, T0 + timedelta(minutes=16)),)

    assert world.evaluate(T0 + timedelta(minutes=17)).empty


def test_bridge_page_summary_says_how_long_and_which_bridge():
    world = bridge_world()
    bridge_down(world)
    event = only_event(world.evaluate(T0 + timedelta(minutes=12, seconds=30)))
    assert event.summary == "iMessage bridge unreachable for 12m (bridge-dc1)"
    assert event.severity is Severity.CRITICAL
    assert event.custom_details["unreachable_since"] == T0.isoformat()
    assert event.custom_details["findings"][0]["remediation"] == "fix http.timeout"


def test_page_after_is_the_integrations_own_threshold():
    world = World()
    world.add(
        integration(
            "bridge-dc1", "imessage_bridge", thresholds=Thresholds(page_after=timedelta(minutes=2))
        )
    )
    bridge_down(world)
    assert sent(world.evaluate(T0 + timedelta(minutes=2, seconds=1))) == [("trigger", BRIDGE_KEY)]


def test_restart_with_the_same_open_incidents_sends_nothing():
    world = bridge_world()
    bridge_down(world)
    world.evaluate(T0 + timedelta(minutes=11))
    restarted = bridge_world()
    bridge_down(restarted)
    restarted.open = dict(world.open)  # what the store kept across the restart
    assert restarted.evaluate(T0 + timedelta(minutes=13)).empty


def test_open_incident_whose_condition_is_gone_is_resolved_on_start():
    world = bridge_world()
    world.open[BRIDGE_KEY] = Incident(
        dedup_key=BRIDGE_KEY,
        rule="bridge_unreachable",
        summary="iMessage bridge unreachable for 11m (bridge-dc1)",
        opened_at=T0,
        details={"channel": "pagerduty", "integration": "bridge-dc1"},
    )
    assert sent(world.evaluate(T0 + timedelta(hours=1))) == [("resolve", BRIDGE_KEY)]


def test_bridge_page_lists_tenants_without_a_connected_twilio_number():
    world = bridge_world()
    world.add(integration("acme-twilio", "twilio", "acme"))
    world.add(integration("globex-twilio", "twilio", "globex"), AUTH)  # revoked: no fallback
    world.add(integration("initech-sendgrid", "sendgrid", "initech"))
    bridge_down(world)
    event = only_event(world.evaluate(T0 + timedelta(minutes=11)))
    assert event.custom_details["tenants_without_sms_fallback"] == ["globex", "initech"]


def test_unreachable_bridge_raises_no_integration_failing_page():
    world = bridge_world()
    bridge_down(world)
    assert world.evaluate(T0 + timedelta(minutes=5)).empty


def test_bridge_that_answers_but_is_signed_out_pages_as_integration_failing():
    world = bridge_world()
    signed_out = finding("bridge.imessage_signed_out", Category.ACCOUNT)
    world.set("bridge-dc1", signed_out)
    event = only_event(world.evaluate(T0))
    assert event.dedup_key == "healthd/integration_failing/bridge-dc1"
    assert event.severity is Severity.CRITICAL


# --- integration_failing and tenants -----------------------------------------------------


def test_platform_credential_failure_pages_critical():
    world = World()
    world.add(integration("sendgrid-platform", "sendgrid"), AUTH)
    event = only_event(world.evaluate(T0))
    assert (event.rule, event.severity) == ("integration_failing", Severity.CRITICAL)
    assert event.summary == (
        "sendgrid integration sendgrid-platform (platform) is failing: The API key is wrong."
    )


def test_platform_provider_failure_pages_with_error_severity():
    world = World()
    world.add(integration("twilio-platform", "twilio"), HTTP_500)
    assert only_event(world.evaluate(T0)).severity is Severity.ERROR


def test_degraded_platform_integration_does_not_page():
    world = World()
    world.add(integration("sendgrid-platform", "sendgrid"), DEGRADED)
    assert world.evaluate(T0).empty


def test_tenant_misconfiguration_never_pages():
    world = World()
    world.add(integration("acme-twilio", "twilio", "acme"), AUTH)
    plan = world.evaluate(T0)
    assert plan.empty


def test_tenant_integration_marked_page_true_pages():
    world = World()
    world.add(integration("acme-twilio", "twilio", "acme", page=True), AUTH)
    assert sent(world.evaluate(T0)) == [("trigger", "healthd/integration_failing/acme-twilio")]


def test_tenant_failure_goes_to_its_webhook_once_and_recovery_resolves_it():
    hooks = {"acme": {"url": "https://hooks.acme.test/healthd", "secret": Secret("w")}}
    world = World(settings(webhooks=hooks))
    world.add(integration("acme-twilio", "twilio", "acme"), AUTH)

    failing = world.evaluate(T0)
    assert sent(failing) == []
    assert sent(failing, "webhook:acme") == [("trigger", "healthd/tenant/acme-twilio")]
    assert world.evaluate(T0 + timedelta(minutes=1)).empty

    world.set("acme-twilio", OK)
    recovered = world.evaluate(T0 + timedelta(minutes=2))
    assert sent(recovered, "webhook:acme") == [("resolve", "healthd/tenant/acme-twilio")]


def test_tenant_degraded_goes_to_its_webhook_as_a_warning():
    world = World(settings(webhooks={"acme": {"url": "https://h.test", "secret": Secret("w")}}))
    world.add(integration("acme-sendgrid", "sendgrid", "acme"), DEGRADED)
    assert only_event(world.evaluate(T0)).severity is Severity.WARNING


def test_a_tenants_webhook_hears_which_integration_and_why_without_the_tenants_name():
    world = World(settings(webhooks={"acme": {"url": "https://h.test", "secret": Secret("w")}}))
    world.add(integration("acme-sendgrid", "sendgrid", "acme"), DEGRADED)
    assert only_event(world.evaluate(T0)).summary == (
        f"sendgrid integration acme-sendgrid is degraded: {DEGRADED.summary}"
    )


def test_a_degraded_status_hovering_at_its_threshold_is_one_trigger_and_one_resolve():
    """A bounce rate at 5 %: degraded one run, ok the next. The webhook hears of it once
    it stays degraded (N runs) and once it stays ok again (M runs), not on every other run."""
    world = World(settings(webhooks={"acme": {"url": "https://h.test", "secret": Secret("w")}}))
    world.add(integration("acme-sendgrid", "sendgrid", "acme"), OK)
    hovering = [DEGRADED, OK, DEGRADED, OK, DEGRADED, DEGRADED, DEGRADED, OK, DEGRADED, OK, OK]
    events = []
    for n, finding_ in enumerate(hovering, start=1):
        at = T0 + n * timedelta(minutes=1)
        world.run("acme-sendgrid", finding_, at=at)
        events += [(n, action) for action, _ in sent(world.evaluate(at), "webhook:acme")]
    assert events == [(7, "trigger"), (11, "resolve")]


def test_trigger_event_carries_the_pagerduty_fields():
    world = World()
    world.add(integration("sendgrid-platform", "sendgrid"), AUTH)
    event = only_event(world.evaluate(T0))
    assert event.source == "healthd"
    assert (event.component, event.group, event.class_) == (
        "sendgrid",
        "platform",
        "integration_failing",
    )
    assert event.timestamp == T0
    assert event.links == (
        (
            "https://healthd.example.test/api/v1/integrations/sendgrid-platform",
            "sendgrid-platform in healthd's status API",
        ),
    )
    assert event.custom_details["findings"][0]["remediation"] == "fix twilio.auth_invalid"


def test_summary_is_one_line_of_at_most_1024_characters():
    world = World()
    long = finding("x", Category.ACCOUNT, summary="line one\nline two " + "y" * 2000)
    world.add(integration("sendgrid-platform", "sendgrid"), long)
    summary = only_event(world.evaluate(T0)).summary
    assert len(summary) == 1024
    assert "\n" not in summary


def test_without_pagerduty_incidents_are_recorded_but_nothing_is_queued():
    world = World(AlertingSettings())
    world.add(integration("sendgrid-platform", "sendgrid"), AUTH)
    plan = world.evaluate(T0)
    assert [i.dedup_key for i in plan.opened] == ["healthd/integration_failing/sendgrid-platform"]
    assert plan.events == ()


# --- provider_outage ---------------------------------------------------------------------


def twilio_fleet(world: World, total: int, failing: int, finding_: Finding = HTTP_500) -> None:
    for n in range(total):
        item = integration(f"t{n:02d}-twilio", "twilio", f"tenant{n:02d}")
        world.add(item, *((finding_,) if n < failing else ()))


@pytest.mark.parametrize(
    ("total", "failing", "pages"),
    [
        (10, 3, True),  # 30% and 3: both thresholds met exactly
        (10, 2, False),  # 20%, 2: neither
        (4, 2, False),  # 50% but only 2
        (11, 3, False),  # 3 but 27%
        (20, 20, True),
    ],
)
def test_provider_outage_needs_both_min_share_and_min_count(total, failing, pages):
    world = World()
    twilio_fleet(world, total, failing)
    expected = [("trigger", "healthd/provider_outage/twilio")] if pages else []
    assert sent(world.evaluate(T0)) == expected


def test_provider_outage_pages_once_for_many_tenants_with_count_and_top_codes():
    world = World()
    twilio_fleet(world, 10, 8)
    event = only_event(world.evaluate(T0))
    assert event.summary.startswith("twilio outage: 8 of 10 integrations")
    assert event.custom_details["affected"] == 8
    assert event.custom_details["top_codes"] == {"twilio.server_error": 8}
    assert event.group is None


def test_provider_outage_ranks_codes_that_tie_by_code_whatever_order_they_failed_in():
    """The engine counts codes as integrations change, in no fixed order: a tie between
    codes must read the same in every page."""
    world = World()
    for n, code in enumerate(("twilio.z_error", "twilio.a_error") * 2):
        world.add(integration(f"t{n}", "twilio", f"tenant{n}"), finding(code, Category.PROVIDER))
    event = only_event(world.evaluate(T0))
    assert event.summary.endswith("(twilio.a_error, twilio.z_error)")
    assert list(event.custom_details["top_codes"]) == ["twilio.a_error", "twilio.z_error"]


def test_tenant_credential_failures_do_not_count_towards_an_outage():
    world = World()
    twilio_fleet(world, 10, 5, AUTH)
    assert world.evaluate(T0).empty


def test_provider_outage_suppresses_provider_failures_of_platform_integrations():
    world = World()
    twilio_fleet(world, 10, 5)
    world.add(integration("twilio-platform", "twilio"), HTTP_500)
    assert sent(world.evaluate(T0)) == [("trigger", "healthd/provider_outage/twilio")]


def test_provider_outage_does_not_suppress_a_platform_credential_failure():
    world = World()
    twilio_fleet(world, 10, 5)
    world.add(integration("twilio-platform", "twilio"), AUTH)
    assert sorted(sent(world.evaluate(T0))) == [
        ("trigger", "healthd/integration_failing/twilio-platform"),
        ("trigger", "healthd/provider_outage/twilio"),
    ]


def test_provider_outage_resolves_when_the_share_falls_back_and_never_blocks_resolves():
    world = World()
    world.add(integration("twilio-platform", "twilio"), HTTP_500)
    world.evaluate(T0)  # the platform integration pages before the outage is visible
    twilio_fleet(world, 10, 5)
    assert sent(world.evaluate(T0 + timedelta(minutes=1))) == [
        ("trigger", "healthd/provider_outage/twilio")
    ]
    world.set("twilio-platform", OK)  # recovers while the outage still holds
    assert sent(world.evaluate(T0 + timedelta(minutes=2))) == [
        ("resolve", "healthd/integration_failing/twilio-platform")
    ]
    for n in range(5):
        world.set(f"t{n:02d}-twilio", OK)
    assert sent(world.evaluate(T0 + timedelta(minutes=3))) == [
        ("resolve", "healthd/provider_outage/twilio")
    ]


def test_provider_outage_stays_open_while_it_holds_back_a_platform_page():
    world = World()
    twilio_fleet(world, 10, 10)
    world.add(integration("twilio-platform", "twilio"), HTTP_500)
    assert sent(world.evaluate(T0)) == [("trigger", "healthd/provider_outage/twilio")]
    for n in range(10):  # the tenants recover first; the platform's state lags behind
        world.set(f"t{n:02d}-twilio", OK)
    assert world.evaluate(T0 + timedelta(minutes=1)).empty
    world.set("twilio-platform", OK)
    assert sent(world.evaluate(T0 + timedelta(minutes=2))) == [
        ("resolve", "healthd/provider_outage/twilio")
    ]


def test_provider_outage_is_not_held_open_by_tenant_integrations():
    world = World()
    twilio_fleet(world, 10, 10)
    world.evaluate(T0)
    for n in range(1, 10):
        world.set(f"t{n:02d}-twilio", OK)  # one tenant keeps failing with a provider error
    assert sent(world.evaluate(T0 + timedelta(minutes=1))) == [
        ("resolve", "healthd/provider_outage/twilio")
    ]


# "A provider starts failing", in a fleet of any size (README: "How many integrations make
# an outage"): needed = max(min(min_count, witnesses), ceil(min_share * witnesses)).


@pytest.mark.parametrize(
    ("total", "failing", "pages"),
    [
        (1, 1, True),  # the only integration of a provider failing with 5xx is the provider
        (2, 1, False),  # the other one works: this account's path, not the provider
        (2, 2, True),
        (3, 2, False),
        (3, 3, True),
        (1000, 1, False),  # one in a thousand is noise
        (1000, 299, False),
        (1000, 300, True),
    ],
)
def test_a_provider_failing_pages_in_a_fleet_of_any_size(total, failing, pages):
    world = World()
    twilio_fleet(world, total, failing)
    expected = [("trigger", "healthd/provider_outage/twilio")] if pages else []
    assert sent(world.evaluate(T0)) == expected


@pytest.mark.parametrize("total", [1, 2, 3, 1000])
def test_a_tenants_own_mistake_never_pages_whatever_the_fleet_size(total):
    world = World()
    twilio_fleet(world, total, total, AUTH)
    assert world.evaluate(T0).empty


def test_a_tenant_failing_for_its_own_reasons_is_no_witness_either_way():
    """Of two, one has a revoked key and cannot tell; the other sees 5xx: the provider."""
    world = World()
    world.add(integration("t00-twilio", "twilio", "tenant00"), AUTH)
    world.add(integration("t01-twilio", "twilio", "tenant01"), HTTP_500)
    assert sent(world.evaluate(T0)) == [("trigger", "healthd/provider_outage/twilio")]


STATUS_PAGE_OUTAGE = dataclasses.replace(
    finding("twilio.platform_incident", Category.PROVIDER), check="platform"
)


def test_a_status_page_outage_alone_is_an_outage_in_a_large_fleet():
    world = World()
    twilio_fleet(world, 1000, 1, STATUS_PAGE_OUTAGE)
    assert sent(world.evaluate(T0)) == [("trigger", "healthd/provider_outage/twilio")]


def test_a_degraded_status_page_pages_nobody():
    world = World()
    twilio_fleet(world, 3, 3, dataclasses.replace(STATUS_PAGE_OUTAGE, status=Status.DEGRADED))
    assert world.evaluate(T0).empty


def test_a_lone_paging_integration_pages_as_itself_not_as_an_outage():
    world = World()
    world.add(integration("twilio-platform", "twilio"), HTTP_500)
    assert sent(world.evaluate(T0)) == [("trigger", "healthd/integration_failing/twilio-platform")]


def test_a_one_integration_outage_resolves_once_it_recovers():
    world = World()
    twilio_fleet(world, 1, 1)
    world.evaluate(T0)
    world.set("t00-twilio", OK)
    assert sent(world.evaluate(T0 + timedelta(minutes=1))) == [
        ("resolve", "healthd/provider_outage/twilio")
    ]


# --- egress_down -------------------------------------------------------------------------


def egress_world() -> World:
    world = bridge_world()
    twilio_fleet(world, 4, 4, TIMEOUT)
    world.add(integration("sendgrid-platform", "sendgrid"), TIMEOUT)
    world.add(integration("google-platform", "google"), TIMEOUT)
    bridge_down(world)
    return world


def test_every_provider_failing_with_network_errors_is_one_egress_page():
    world = egress_world()
    plan = world.evaluate(T0 + timedelta(minutes=11))
    assert sent(plan) == [("trigger", "healthd/egress_down")]
    assert only_event(plan).summary == (
        "healthd cannot reach any provider: its own egress or the datacenter's network"
    )


def test_one_success_anywhere_means_it_is_not_healthds_egress():
    world = egress_world()
    world.add(integration("acme-sendgrid", "sendgrid", "acme"))
    keys = {key for _, key in sent(world.evaluate(T0 + timedelta(minutes=11)))}
    assert "healthd/egress_down" not in keys
    assert {"healthd/provider_outage/twilio", BRIDGE_KEY} <= keys


def test_first_success_after_egress_down_releases_no_page_storm():
    world = egress_world()
    world.evaluate(T0 + timedelta(minutes=11))
    world.add(integration("acme-sendgrid", "sendgrid", "acme"))  # the network is back...
    # ...but the other state machines have not yet seen their good probes.
    assert world.evaluate(T0 + timedelta(minutes=12)).empty


def test_egress_down_resolves_and_a_held_back_page_triggers_if_still_true():
    world = egress_world()
    world.evaluate(T0 + timedelta(minutes=11))
    for iid in ("sendgrid-platform", "google-platform"):
        world.set(iid, OK)
    world.set("bridge-dc1", OK)  # only twilio is left failing: not healthd's network
    plan = world.evaluate(T0 + timedelta(minutes=12))
    assert sorted(sent(plan)) == [
        ("resolve", "healthd/egress_down"),
        ("trigger", "healthd/provider_outage/twilio"),
    ]


# --- maintenance -------------------------------------------------------------------------


def window(start: datetime, end: datetime, **kw: Any) -> dict[str, Any]:
    return {"name": "dc1 power work", "start": start, "end": end, **kw}


def test_maintenance_silences_then_triggers_once_when_the_window_ends():
    config = settings(maintenance=[window(T0, T0 + timedelta(minutes=30))])
    world = bridge_world(config=config)
    bridge_down(world)
    assert world.evaluate(T0 + timedelta(minutes=11)).empty
    assert world.evaluate(T0 + timedelta(minutes=29)).empty
    assert sent(world.evaluate(T0 + timedelta(minutes=30))) == [("trigger", BRIDGE_KEY)]
    assert world.evaluate(T0 + timedelta(minutes=31)).empty


def test_maintenance_never_blocks_a_resolve():
    config = settings(maintenance=[window(T0 + timedelta(minutes=20), T0 + timedelta(hours=1))])
    world = bridge_world(config=config)
    bridge_down(world)
    world.evaluate(T0 + timedelta(minutes=11))
    world.set("bridge-dc1", OK)
    assert sent(world.evaluate(T0 + timedelta(minutes=25))) == [("resolve", BRIDGE_KEY)]


def test_maintenance_selectors_silence_only_what_they_name():
    config = settings(
        maintenance=[
            window(T0, T0 + timedelta(hours=1), rules=["integration_failing"], tenants=["acme"])
        ]
    )
    world = World(config)
    world.add(integration("acme-twilio", "twilio", "acme", page=True), AUTH)
    world.add(integration("sendgrid-platform", "sendgrid"), AUTH)
    assert sent(world.evaluate(T0)) == [
        ("trigger", "healthd/integration_failing/sendgrid-platform")
    ]


def test_maintenance_for_a_tenant_does_not_silence_egress_down():
    config = settings(maintenance=[window(T0, T0 + timedelta(hours=1), tenants=["acme"])])
    world = egress_world()
    world.settings = config
    assert ("trigger", "healthd/egress_down") in sent(world.evaluate(T0 + timedelta(minutes=11)))


def test_run_time_silences_hold_back_triggers_like_maintenance():
    world = bridge_world()
    bridge_down(world)
    silence = MaintenanceWindow.model_validate(window(T0, T0 + timedelta(hours=1)))
    plan = evaluate(
        integrations=world.integrations,
        states=world.states,
        results=world.results,
        open_incidents=[],
        settings=world.settings,
        now=T0 + timedelta(minutes=11),
        silences=[silence],
    )
    assert plan.empty


# --- flapping ----------------------------------------------------------------------------


def test_flapping_bridge_pages_by_the_state_machines_unreachable_since():
    """The timer is the state machine's: while it keeps `unreachable_since`, one answer in
    between does not restart it; when it clears it, the next outage starts over."""
    world = bridge_world()
    bridge_down(world, since=T0)
    assert world.evaluate(T0 + timedelta(minutes=9)).empty
    # One good answer that the state machine did not count as recovery: timer kept.
    world.states["bridge-dc1"] = dataclasses.replace(
        world.states["bridge-dc1"], last_result_status=Status.OK
    )
    assert sent(world.evaluate(T0 + timedelta(minutes=11))) == [("trigger", BRIDGE_KEY)]
    # Recovered for the state machine, then down again: a new timer, the page resolves.
    world.set("bridge-dc1", OK)
    assert sent(world.evaluate(T0 + timedelta(minutes=12))) == [("resolve", BRIDGE_KEY)]
    bridge_down(world, since=T0 + timedelta(minutes=13))
    assert world.evaluate(T0 + timedelta(minutes=22)).empty


# --- recovering: bad by the state machine, good by the latest run ------------------------


def recovering(world: World, iid: str) -> None:
    """The latest run is good; the state machine has not yet seen its M good runs."""
    world.results[iid] = ProbeResult.from_findings(
        integration_id=iid, started_at=T0, duration_seconds=0.1, findings=(OK,)
    )


def test_the_network_coming_back_releases_no_page_while_state_machines_catch_up():
    """Every latest run good at once after egress_down: its first good sweep must not
    trigger the bridge and the platform integrations it held back, only to resolve them
    one sweep later."""
    world = egress_world()
    assert sent(world.evaluate(T0 + timedelta(minutes=11))) == [("trigger", "healthd/egress_down")]
    for iid in world.integrations:
        recovering(world, iid)
    assert world.evaluate(T0 + timedelta(minutes=12)).empty
    for iid in list(world.integrations):
        world.set(iid, OK)
    assert sent(world.evaluate(T0 + timedelta(minutes=13))) == [("resolve", "healthd/egress_down")]


def test_a_recovering_platform_integration_is_not_paged_when_the_outage_lets_go():
    world = World()
    twilio_fleet(world, 10, 10)
    world.add(integration("twilio-platform", "twilio"), HTTP_500)
    assert sent(world.evaluate(T0)) == [("trigger", "healthd/provider_outage/twilio")]
    for n in range(10):
        world.set(f"t{n:02d}-twilio", OK)
    recovering(world, "twilio-platform")
    assert sent(world.evaluate(T0 + timedelta(minutes=1))) == [
        ("resolve", "healthd/provider_outage/twilio")
    ]


def test_one_good_answer_in_an_outage_neither_resolves_nor_retriggers_the_page():
    world = World()
    twilio_fleet(world, 10, 10)
    assert sent(world.evaluate(T0)) == [("trigger", "healthd/provider_outage/twilio")]
    for n in range(10):
        recovering(world, f"t{n:02d}-twilio")
    assert world.evaluate(T0 + timedelta(minutes=1)).empty
    twilio_fleet(world, 10, 10)  # 5xx again before the state machines called it over
    assert world.evaluate(T0 + timedelta(minutes=2)).empty


def test_a_bridge_answering_again_is_not_paged_while_its_timer_runs_out():
    """unreachable_since stays until M answers in a row; a page held back until then (by
    egress_down or a silence) must not go out for a bridge that already answers."""
    world = bridge_world()
    bridge_down(world)
    recovering(world, "bridge-dc1")
    assert world.evaluate(T0 + timedelta(minutes=11)).empty


def run_of(*findings: Finding, at: datetime = T0, **state: Any) -> tuple[Any, ...]:
    """The rule inputs after a run at `at` with `findings`, the state given by `state`."""
    result = ProbeResult.from_findings(
        integration_id="x", started_at=at, duration_seconds=0.1, findings=findings
    )
    st = IntegrationState(
        integration_id="x", status=result.status, since=T0, last_checked=at, **state
    )
    return rule_inputs(st, result)


def test_a_healthy_run_that_changes_only_its_timing_changes_no_rule_input() -> None:
    assert run_of(OK) == run_of(OK, at=T0 + timedelta(minutes=1), consecutive_successes=9)


def test_a_run_with_another_result_status_changes_the_rule_inputs() -> None:
    assert run_of(OK) != run_of(DEGRADED)


def test_another_failure_in_a_row_changes_the_rule_inputs() -> None:
    assert run_of(AUTH, consecutive_failures=1) != run_of(AUTH, consecutive_failures=2)


def test_a_bridge_going_unreachable_changes_the_rule_inputs() -> None:
    assert run_of(TIMEOUT) != run_of(TIMEOUT, unreachable_since=T0)

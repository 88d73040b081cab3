from __future__ import annotations

import asyncio
import json
import logging
import traceback
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from healthd.alerts.pagerduty import PagerDutyNotifier, build_event, fit_dedup_key
from healthd.alerts.settings import PagerDutySettings
from healthd.errors import DeliveryError
from healthd.model import EventAction, Severity
from healthd.secrets import Secret
from tests.alerts.conftest import Server, make_event

ROUTING_KEY = "R0UT1NGK3Y0123456789abcdefXYZ789"  # 32 characters, like a real one
TS = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


# --- build_event ---------------------------------------------------------------------------


def test_trigger_body_has_every_field_in_its_place():
    event = make_event(
        severity=Severity.CRITICAL,
        component="imessage_bridge",
        group="platform",
        class_="bridge_unreachable",
        custom_details={"unreachable_seconds": 720},
        links=(("https://healthd.test/api/v1/integrations/bridge-dc1", "status"),),
        timestamp=TS,
    )
    assert build_event(event, ROUTING_KEY) == {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": "healthd/bridge_unreachable/bridge-dc1",
        "payload": {
            "summary": "iMessage bridge unreachable for 12m (bridge-dc1)",
            "source": "healthd",
            "severity": "critical",
            "timestamp": "2026-03-01T12:00:00+00:00",
            "component": "imessage_bridge",
            "group": "platform",
            "class": "bridge_unreachable",
            "custom_details": {"unreachable_seconds": 720},
        },
        "links": [
            {"href": "https://healthd.test/api/v1/integrations/bridge-dc1", "text": "status"}
        ],
    }


def test_trigger_body_leaves_out_unset_optional_fields():
    body = build_event(make_event(), ROUTING_KEY)
    assert set(body) == {"routing_key", "event_action", "dedup_key", "payload"}
    assert set(body["payload"]) == {"summary", "source", "severity"}


def test_resolve_body_carries_only_key_action_and_dedup_key():
    body = build_event(make_event(EventAction.RESOLVE, custom_details={"a": 1}), ROUTING_KEY)
    assert body == {
        "routing_key": ROUTING_KEY,
        "event_action": "resolve",
        "dedup_key": "healthd/bridge_unreachable/bridge-dc1",
    }


def test_summary_is_cut_to_1024_characters():
    body = build_event(make_event(summary="x" * 2000), ROUTING_KEY)
    assert len(body["payload"]["summary"]) == 1024


@pytest.mark.parametrize("length", [255, 256, 400])
def test_dedup_key_fits_255_characters_and_stays_distinct(length):
    key = "healthd/integration_failing/" + "i" * (length - 28)
    fitted = fit_dedup_key(key)
    assert len(fitted) <= 255
    assert (fitted == key) == (length <= 255)
    assert fit_dedup_key(key + "2") != fitted


# --- send() against a loopback HTTPS server ------------------------------------------------


@pytest.fixture
async def notifier(server: Server) -> AsyncIterator[PagerDutyNotifier]:
    pd = PagerDutyNotifier(settings_for(server.url, server.ca_bundle))
    try:
        yield pd
    finally:
        await pd.close()


def settings_for(url: str, ca_bundle: Path | None) -> PagerDutySettings:
    return PagerDutySettings(
        routing_key=Secret(ROUTING_KEY),
        events_url=url,
        ca_bundle=ca_bundle,
        timeout=timedelta(seconds=5),
    )


def assert_no_routing_key(exc: BaseException) -> None:
    text = "".join(traceback.format_exception(exc)) + repr(exc)
    assert ROUTING_KEY not in text
    assert ROUTING_KEY[-4:] not in text


async def test_accepted_event_reaches_the_events_api_with_the_key_in_the_body(server, notifier):
    await notifier.send(make_event(timestamp=TS))
    [body] = server.api.received
    assert body == build_event(make_event(timestamp=TS), ROUTING_KEY)


async def test_400_is_permanent_and_carries_pagerdutys_message_without_the_key(server, notifier):
    server.api.answers.append(
        (
            400,
            {
                "status": "invalid event",
                "message": "Event object is invalid",
                "errors": [f"Length of 'routing_key' {ROUTING_KEY} is incorrect"],
            },
            {},
        )
    )
    with pytest.raises(DeliveryError) as info:
        await notifier.send(make_event())
    assert info.value.permanent
    assert "PagerDuty answered 400: Event object is invalid" in str(info.value)
    assert_no_routing_key(info.value)


async def test_429_is_transient_with_retry_after_and_not_retried_inside_the_sdk(
    server, notifier, caplog
):
    limited = (429, {"status": "throttled"}, {"Retry-After": "30"})
    server.api.answers += [limited, limited, (202, {"status": "success"}, {})]
    with caplog.at_level(logging.DEBUG, logger="pagerduty"):
        with pytest.raises(DeliveryError) as info:
            await notifier.send(make_event())
    assert not info.value.permanent
    assert info.value.retry_after == 30
    assert len(server.api.received) == 1  # the outbox owns the retry, with its backoff
    assert [r for r in caplog.records if r.name.startswith("pagerduty")] == []
    assert_no_routing_key(info.value)


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_is_transient_and_not_retried_inside_the_sdk(server, notifier, status):
    server.api.answers.append((status, {"status": "error"}, {}))
    with pytest.raises(DeliveryError) as info:
        await notifier.send(make_event())
    assert not info.value.permanent
    assert len(server.api.received) == 1
    assert_no_routing_key(info.value)


async def test_401_is_permanent_and_the_sdks_truncated_key_is_scrubbed(server, notifier):
    server.api.answers.append((401, {"status": "unauthorized"}, {}))
    with pytest.raises(DeliveryError) as info:
        await notifier.send(make_event())
    assert info.value.permanent
    assert_no_routing_key(info.value)


async def test_unreachable_pagerduty_is_transient(server, notifier):
    closed = PagerDutyNotifier(settings_for("https://127.0.0.1:1", server.ca_bundle))
    try:
        with pytest.raises(DeliveryError) as info:
            await closed.send(make_event())
    finally:
        await closed.close()
    assert not info.value.permanent
    assert "cannot reach PagerDuty at https://127.0.0.1:1" in str(info.value)
    assert_no_routing_key(info.value)


async def test_network_error_is_left_to_the_outbox_without_sdk_retries(server):
    connections = 0

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    listener = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    dropping = PagerDutyNotifier(settings_for(f"https://127.0.0.1:{port}", server.ca_bundle))
    try:
        with pytest.raises(DeliveryError) as info:
            await dropping.send(make_event())
    finally:
        await dropping.close()
        listener.close()
        await listener.wait_closed()
    assert not info.value.permanent
    assert connections == 1


async def test_without_the_ca_bundle_the_test_server_is_not_trusted(server):
    untrusting = PagerDutyNotifier(settings_for(server.url, None))
    try:
        with pytest.raises(DeliveryError) as info:
            await untrusting.send(make_event())
    finally:
        await untrusting.close()
    assert not info.value.permanent
    assert server.api.received == []


async def test_resolve_is_sent_with_its_dedup_key(server, notifier):
    await notifier.send(make_event(EventAction.RESOLVE))
    assert server.api.received == [
        {
            "routing_key": ROUTING_KEY,
            "event_action": "resolve",
            "dedup_key": "healthd/bridge_unreachable/bridge-dc1",
        }
    ]


def test_settings_repr_hides_the_routing_key():
    settings = settings_for("https://127.0.0.1:1", None)
    assert ROUTING_KEY not in repr(settings)
    assert ROUTING_KEY not in json.dumps(settings.model_dump(mode="json"))

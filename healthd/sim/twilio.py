"""Twilio's REST API on loopback: api.twilio.com (`/2010-04-01/...`) and messaging.twilio.com
(`/v1/...`) in one server, with the real paths, JSON shapes, paging envelopes and error bodies
(PROVIDERS.md A0-A6; `tests/sim/test_twilio_sim.py` checks them against Twilio's OpenAPI files).

Each account SID is a target. HTTP Basic auth is the account SID and its auth token: the token
is `sim-twilio-token` unless the target's scenario params set `auth_token`. Every account owns
the same small, deterministic world derived from its SID: a local number (`LOCAL_NUMBER`), a
toll-free number (`TOLLFREE_NUMBER`), one Messaging Service with both in its pool, an approved
brand, a verified campaign, an approved toll-free verification and recent outbound messages.

Scenarios (params in brackets):
- `ok`: all of the above healthy; messages all delivered [`count`=50, `spacing` seconds=30].
- `revoked_token`: every request answers 401 / 20003.
- `suspended`, `closed`: the account's `status`.
- `number_without_sms`: the local number has `sms: false` [`number`].
- `number_not_owned`: the number list lacks the local number [`number`].
- `empty_pool`: the Messaging Service has no phone numbers (so the local number is in no
  service: it has no A2P 10DLC campaign).
- `no_campaign`: the Messaging Service has no A2P 10DLC campaign.
- `campaign_suspended`, `campaign_pending`: campaign_status SUSPENDED / PENDING [`status`].
- `brand_failed`: the brand is FAILED with errors.
- `tollfree_unverified`: the verification is TWILIO_REJECTED [`status`: e.g. PENDING_REVIEW,
  or `none` for no verification at all].
- `filtering_spike`: a share of messages undelivered with 30007 [`count`, `rate`=0.3;
  `error_code` plants another carrier code, e.g. 30034, in the same share].
- `optout_trickle`: a share failed with 21610, a few with 21211 [`count`, `rate`=0.1].
- `server_error`: 500 with a classic body; `rate_limited`: 429 / 20429.

Every scenario takes `extra_services` (default 0): that many more Messaging Services, each
with an empty pool, listed before the account's own one by `GET /v1/Services`, and
`messages` (a name): messages with other SIDs than those of the scenarios before it.

monitor.twilio.com's `GET /v1/Alerts` (the Debugger's alerts) is served too: every scenario
takes `alerts` (default 0), that many error-level alerts for message requests the API
refused (a 400 with `alert_code`, default 21211, and no message made), one every
`alert_spacing` seconds (default 60) before now, and `message_alerts` (default 0) warnings
about messages that were made (30003 on an SM resource), which a message read counts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

from aiohttp import web
from yarl import URL

from healthd.sim.base import ProviderSim, Scenario
from healthd.sim.callbacks import (
    post_all,
    twilio_event,
    twilio_events,
    twilio_fields,
    twilio_status,
)

DEFAULT_TOKEN = "sim-twilio-token"
# Where a test asks the simulator to post its messages' status callbacks (not a Twilio API).
CALLBACKS_PATH = "/twilio-sim/callbacks"
LOCAL_NUMBER = "+14155550100"
TOLLFREE_NUMBER = "+18445550100"
SERVICE_FRIENDLY_NAME = "healthd sim service"

Json = dict[str, Any]


def sid(prefix: str, *parts: str) -> str:
    """A stable 34-character SID (`AC`, `PN`, `MG`, ...) derived from `parts`."""
    return prefix + hashlib.md5(":".join(parts).encode()).hexdigest()


def service_sid(account_sid: str) -> str:
    return sid("MG", account_sid, "service")


def number_sid(account_sid: str, number: str) -> str:
    return sid("PN", account_sid, number)


class TwilioSim(ProviderSim):
    name = "twilio"
    scenarios = frozenset(
        {
            "ok",
            "revoked_token",
            "suspended",
            "closed",
            "number_without_sms",
            "number_not_owned",
            "empty_pool",
            "no_campaign",
            "campaign_suspended",
            "campaign_pending",
            "brand_failed",
            "tollfree_unverified",
            "filtering_spike",
            "optout_trickle",
            "late_receipts",
            "server_error",
            "rate_limited",
        }
    )

    def routes(self) -> list[web.RouteDef]:
        a = "/2010-04-01/Accounts/{account}"
        m = "/v1/Services/{service}"
        return [
            web.get(a + ".json", self._guarded(self.account)),
            web.get(a + "/Balance.json", self._guarded(self.balance)),
            web.get(a + "/IncomingPhoneNumbers.json", self._guarded(self.incoming_numbers)),
            web.get(a + "/Messages.json", self._guarded(self.messages)),
            web.get("/v1/Services", self._guarded(self.services)),
            web.get(m, self._guarded(self.service)),
            web.get(m + "/PhoneNumbers", self._guarded(self.service_numbers)),
            web.get(m + "/Compliance/Usa2p", self._guarded(self.campaigns)),
            web.get("/v1/a2p/BrandRegistrations/{brand}", self._guarded(self.brand)),
            web.get("/v1/Tollfree/Verifications", self._guarded(self.tollfree)),
            web.get("/v1/Alerts", self._guarded(self.alerts)),
            web.post(CALLBACKS_PATH, self.send_callbacks),
        ]

    # -- status callbacks: the simulator posts them for the messages it makes

    async def send_callbacks(self, request: web.Request) -> web.Response:
        """`POST /twilio-sim/callbacks {"target", "url", "replays", "forged", "via",
        "batch"}`: posts, signed as Twilio signs them, a `sent` then a final status for
        every message of `target`'s scenario (late receipts included), then the last
        `replays` requests again and `forged` more with a wrong signature; answers the
        statuses healthd gave. `via` is `status` (status callbacks, one per status) or
        `events` (an Event Streams webhook sink: CloudEvents in batches of `batch`)."""
        body = await request.json()
        account, url = str(body["target"]), str(body["url"])
        sc = self.scenario_for(account)
        token = str(sc.params.get("auth_token", DEFAULT_TOKEN))
        statuses: list[tuple[str, str, str | None]] = []
        for m in reversed(_generate_messages(account, sc, datetime.now(UTC))):
            code = None if m["error_code"] is None else str(m["error_code"])
            statuses.append((m["sid"], "sent", None))
            if m["status"] != "sent":
                statuses.append((m["sid"], m["status"], code))
        bogus = [
            (f"SMforged{n}", "undelivered", "30003") for n in range(int(body.get("forged", 0)))
        ]
        if body.get("via", "status") == "events":
            batch = int(body.get("batch", 50))
            signed = [
                twilio_events(
                    url, token, [twilio_event(account, *s) for s in statuses[i : i + batch]]
                )
                for i in range(0, len(statuses), batch)
            ]
            refused = [
                twilio_events(url, token, [twilio_event(account, *s)], forged=True) for s in bogus
            ]
        else:
            signed = [twilio_status(url, token, twilio_fields(account, *s)) for s in statuses]
            refused = [
                twilio_status(url, token, twilio_fields(account, *s), forged=True) for s in bogus
            ]
        replays = int(body.get("replays", 0))
        signed += (signed[-replays:] if replays else []) + refused
        answers = await post_all(url, signed)
        return web.json_response({"sent": len(signed), "answers": answers})

    # -- auth, scenarios and errors common to every route

    def _guarded(
        self, handler: Callable[[web.Request, str, Scenario], web.Response]
    ) -> Callable[[web.Request], Any]:
        async def route(request: web.Request) -> web.Response:
            account = _basic_user(request)
            sc = await self.delay(account or "-")
            failure = self._refusal(request, account, sc)
            if failure is not None:
                return failure
            assert account is not None
            return handler(request, account, sc)

        return route

    def _refusal(
        self, request: web.Request, account: str | None, sc: Scenario
    ) -> web.Response | None:
        if account is None or sc.name == "revoked_token":
            return error_response(401, 20003, "Authenticate")
        expected = str(sc.params.get("auth_token", DEFAULT_TOKEN))
        if _basic_password(request) != expected:
            return error_response(401, 20003, "Authenticate")
        path_account = request.match_info.get("account")
        if path_account is not None and path_account != account:
            return error_response(401, 20003, "Authenticate")
        if sc.name == "server_error":
            return error_response(500, 20500, "Internal Server Error")
        if sc.name == "rate_limited":
            return error_response(429, 20429, "Too Many Requests")
        return None

    # -- api.twilio.com

    def account(self, request: web.Request, account: str, sc: Scenario) -> web.Response:
        status = {"suspended": "suspended", "closed": "closed"}.get(sc.name, "active")
        base = f"/2010-04-01/Accounts/{account}"
        return web.json_response(
            {
                # The real API returns the token in the account; a probe must never echo it.
                "auth_token": str(sc.params.get("auth_token", DEFAULT_TOKEN)),
                "date_created": _rfc2822(_CREATED),
                "date_updated": _rfc2822(_CREATED),
                "friendly_name": "healthd sim account",
                "owner_account_sid": account,
                "sid": account,
                "status": status,
                "subresource_uris": {
                    "balance": f"{base}/Balance.json",
                    "incoming_phone_numbers": f"{base}/IncomingPhoneNumbers.json",
                    "messages": f"{base}/Messages.json",
                },
                "type": "Full",
                "uri": f"{base}.json",
            }
        )

    def balance(self, request: web.Request, account: str, sc: Scenario) -> web.Response:
        return web.json_response({"account_sid": account, "balance": "42.17", "currency": "USD"})

    def incoming_numbers(self, request: web.Request, account: str, sc: Scenario) -> web.Response:
        wanted = request.query.get("PhoneNumber")
        records = [
            _incoming_number(account, number, sms)
            for number, sms in self._owned_numbers(sc)
            if wanted is None or number == wanted
        ]
        return _page_2010(request, "incoming_phone_numbers", records)

    def messages(self, request: web.Request, account: str, sc: Scenario) -> web.Response:
        try:
            after = _parse_date(request.query.get("DateSent>"))
            before = _parse_date(request.query.get("DateSent<"))
        except ValueError:
            return error_response(400, 20001, "Invalid DateSent")
        records = [
            m
            for m in _generate_messages(account, sc, datetime.now(UTC))
            if (after is None or m["_sent"] >= after) and (before is None or m["_sent"] < before)
        ]
        return _page_2010(request, "messages", [_public(m) for m in records])

    # -- monitor.twilio.com

    def alerts(self, request: web.Request, account: str, sc: Scenario) -> web.Response:
        """`ListAlert`: newest first, `StartDate`/`EndDate` (date or date-time, GMT) and
        `LogLevel` filter, paged in the v1 envelope."""
        try:
            start = _parse_date(request.query.get("StartDate"))
            end = _parse_date(request.query.get("EndDate"))
        except ValueError:
            return error_response(400, 20001, "Invalid StartDate or EndDate")
        level = request.query.get("LogLevel")
        records = [
            a
            for a in _generate_alerts(account, sc, datetime.now(UTC))
            if (start is None or a["_at"] >= start)
            and (end is None or a["_at"] <= end)
            and (level is None or a["log_level"] == level)
        ]
        return _page_v1(request, "alerts", [_public(a) for a in records])

    # -- messaging.twilio.com

    def services(self, request: web.Request, account: str, sc: Scenario) -> web.Response:
        records = [_service(request, account, mg, sc) for mg in _service_sids(account, sc)]
        return _page_v1(request, "services", records)

    def service(self, request: web.Request, account: str, sc: Scenario) -> web.Response:
        mg = request.match_info["service"]
        if mg not in _service_sids(account, sc):
            return _not_found(request)
        return web.json_response(_service(request, account, mg, sc))

    def service_numbers(self, request: web.Request, account: str, sc: Scenario) -> web.Response:
        mg = request.match_info["service"]
        if mg not in _service_sids(account, sc):
            return _not_found(request)
        own = mg == service_sid(account) and sc.name != "empty_pool"
        pool = self._owned_numbers(sc) if own else []
        records = [_service_number(request, account, mg, number, sms) for number, sms in pool]
        return _page_v1(request, "phone_numbers", records)

    def campaigns(self, request: web.Request, account: str, sc: Scenario) -> web.Response:
        mg = request.match_info["service"]
        if mg not in _service_sids(account, sc):
            return _not_found(request)
        if mg != service_sid(account) or sc.name == "no_campaign":
            return _page_v1(request, "compliance", [])
        status = {"campaign_suspended": "SUSPENDED", "campaign_pending": "PENDING"}.get(
            sc.name, "VERIFIED"
        )
        status = str(sc.params.get("status", status)) if sc.name.startswith("campaign") else status
        qe = sid("QE", account, "campaign")
        now = _iso(_CREATED)
        record = {
            "sid": qe,
            "account_sid": account,
            "brand_registration_sid": sid("BN", account, "brand"),
            "messaging_service_sid": mg,
            "description": "Appointment reminders for patients who opted in",
            "message_samples": ["Your appointment is tomorrow at 10am. Reply STOP to opt out."],
            "us_app_to_person_usecase": "MIXED",
            "has_embedded_links": False,
            "has_embedded_phone": False,
            "subscriber_opt_in": True,
            "age_gated": False,
            "direct_lending": False,
            "campaign_status": status,
            "campaign_id": "CSIMCAMP",
            "is_externally_registered": False,
            "rate_limits": {
                "att": {"mps": 600, "msg_class": "A"},
                "tmobile": {"brand_tier": "TOP"},
            },
            "message_flow": "Patients opt in on the booking form.",
            "opt_in_message": None,
            "opt_out_message": None,
            "help_message": None,
            "opt_in_keywords": None,
            "opt_out_keywords": None,
            "help_keywords": None,
            "date_created": now,
            "date_updated": now,
            "url": _origin(request) + f"/v1/Services/{mg}/Compliance/Usa2p/{qe}",
            "mock": False,
            "errors": [],
        }
        return _page_v1(request, "compliance", [record])

    def brand(self, request: web.Request, account: str, sc: Scenario) -> web.Response:
        bn = request.match_info["brand"]
        if bn != sid("BN", account, "brand"):
            return _not_found(request)
        failed = sc.name == "brand_failed"
        now = _iso(_CREATED)
        return web.json_response(
            {
                "sid": bn,
                "account_sid": account,
                "customer_profile_bundle_sid": sid("BU", account, "profile"),
                "a2p_profile_bundle_sid": sid("BU", account, "a2p"),
                "date_created": now,
                "date_updated": now,
                "brand_type": "STANDARD",
                "status": "FAILED" if failed else "APPROVED",
                "tcr_id": "BSIMBRAND",
                "failure_reason": "TAX_ID does not match the business name" if failed else None,
                "errors": (
                    [{"code": "TCR_2002", "description": "TAX_ID does not match the business name"}]
                    if failed
                    else []
                ),
                "url": _origin(request) + f"/v1/a2p/BrandRegistrations/{bn}",
                "brand_score": 42 if failed else 80,
                "brand_feedback": ["TAX_ID"] if failed else [],
                "identity_status": "UNVERIFIED" if failed else "VERIFIED",
                "russell_3000": False,
                "government_entity": False,
                "tax_exempt_status": None,
                "skip_automatic_sec_vet": False,
                "mock": False,
                "links": {},
            }
        )

    def tollfree(self, request: web.Request, account: str, sc: Scenario) -> web.Response:
        status = "TWILIO_APPROVED"
        if sc.name == "tollfree_unverified":
            status = str(sc.params.get("status", "TWILIO_REJECTED"))
        pn = number_sid(account, TOLLFREE_NUMBER)
        wanted = request.query.get("TollfreePhoneNumberSid")
        records = []
        if status != "none" and wanted in (None, pn):
            records.append(_verification(request, account, pn, status))
        return _page_v1(request, "verifications", records)

    def _owned_numbers(self, sc: Scenario) -> list[tuple[str, bool]]:
        special = str(sc.params.get("number", LOCAL_NUMBER))
        numbers = [(LOCAL_NUMBER, True), (TOLLFREE_NUMBER, True)]
        if sc.name in ("number_without_sms", "number_not_owned") and special not in dict(numbers):
            numbers.append((special, True))
        if sc.name == "number_without_sms":
            return [(n, sms and n != special) for n, sms in numbers]
        if sc.name == "number_not_owned":
            return [(n, sms) for n, sms in numbers if n != special]
        return numbers


# -- records

_CREATED = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def _service_sids(account: str, sc: Scenario) -> list[str]:
    """The account's Messaging Services: `extra_services` empty ones, then its own."""
    extra = int(sc.params.get("extra_services", 0))
    return [*(sid("MG", account, f"extra{i}") for i in range(extra)), service_sid(account)]


def _service(request: web.Request, account: str, mg: str, sc: Scenario) -> Json:
    base = _origin(request) + f"/v1/Services/{mg}"
    now = _iso(_CREATED)
    return {
        "sid": mg,
        "account_sid": account,
        "friendly_name": SERVICE_FRIENDLY_NAME if mg == service_sid(account) else mg,
        "date_created": now,
        "date_updated": now,
        "inbound_request_url": None,
        "inbound_method": "POST",
        "fallback_url": None,
        "fallback_method": "POST",
        "status_callback": None,
        "sticky_sender": True,
        "mms_converter": True,
        "smart_encoding": True,
        "scan_message_content": "inherit",
        "fallback_to_long_code": True,
        "area_code_geomatch": True,
        "synchronous_validation": False,
        "validity_period": 14400,
        "url": base,
        "links": {
            "phone_numbers": f"{base}/PhoneNumbers",
            "us_app_to_person": f"{base}/Compliance/Usa2p",
        },
        "usecase": "marketing",
        "us_app_to_person_registered": mg == service_sid(account)
        and sc.name not in ("campaign_pending", "no_campaign"),
        "use_inbound_webhook_on_number": False,
    }


def _incoming_number(account: str, number: str, sms: bool) -> Json:
    pn = number_sid(account, number)
    base = f"/2010-04-01/Accounts/{account}/IncomingPhoneNumbers/{pn}"
    return {
        "account_sid": account,
        "address_sid": None,
        "address_requirements": "none",
        "api_version": "2010-04-01",
        "beta": False,
        "capabilities": {"voice": True, "sms": sms, "mms": sms, "fax": False},
        "date_created": _rfc2822(_CREATED),
        "date_updated": _rfc2822(_CREATED),
        "friendly_name": number,
        "identity_sid": None,
        "phone_number": number,
        "origin": "twilio",
        "sid": pn,
        "sms_application_sid": None,
        "sms_fallback_method": "POST",
        "sms_fallback_url": "",
        "sms_method": "POST",
        "sms_url": "",
        "status_callback": "",
        "status_callback_method": "POST",
        "trunk_sid": None,
        "uri": base + ".json",
        "voice_receive_mode": "voice",
        "voice_application_sid": None,
        "voice_caller_id_lookup": False,
        "voice_fallback_method": "POST",
        "voice_fallback_url": None,
        "voice_method": "POST",
        "voice_url": None,
        "emergency_status": "Inactive",
        "emergency_address_sid": None,
        "emergency_address_status": "unregistered",
        "bundle_sid": None,
        "status": "in-use",
        "type": "tollfree" if _is_tollfree(number) else "local",
    }


def _service_number(request: web.Request, account: str, mg: str, number: str, sms: bool) -> Json:
    pn = number_sid(account, number)
    now = _iso(_CREATED)
    return {
        "sid": pn,
        "account_sid": account,
        "service_sid": mg,
        "date_created": now,
        "date_updated": now,
        "phone_number": number,
        "country_code": "US",
        "capabilities": ["Voice", "SMS", "MMS"] if sms else ["Voice"],
        "url": _origin(request) + f"/v1/Services/{mg}/PhoneNumbers/{pn}",
    }


def _verification(request: web.Request, account: str, pn: str, status: str) -> Json:
    hh = sid("HH", account, "tollfree")
    rejected = status == "TWILIO_REJECTED"
    now = _iso(_CREATED)
    return {
        "sid": hh,
        "account_sid": account,
        "customer_profile_sid": sid("BU", account, "profile"),
        "trust_product_sid": sid("BU", account, "tollfree"),
        "date_created": now,
        "date_updated": now,
        "regulated_item_sid": None,
        "business_name": "healthd sim clinic",
        "business_website": "https://clinic.example",
        "notification_email": "owner@clinic.example",
        "use_case_categories": ["CUSTOMER_CARE"],
        "use_case_summary": "Appointment reminders",
        "production_message_sample": "Your appointment is tomorrow at 10am. Reply STOP to opt out.",
        "opt_in_image_urls": [],
        "opt_in_type": "WEB_FORM",
        "message_volume": "1,000",
        "additional_information": None,
        "tollfree_phone_number_sid": pn,
        "tollfree_phone_number": TOLLFREE_NUMBER,
        "status": status,
        "url": _origin(request) + f"/v1/Tollfree/Verifications/{hh}",
        "rejection_reason": "Opt-in information is missing or unclear" if rejected else None,
        "error_code": 30446 if rejected else None,
        "edit_expiration": None,
        "edit_allowed": rejected,
        "rejection_reasons": (
            [{"code": 30446, "reason": "Opt-in information is missing or unclear"}]
            if rejected
            else None
        ),
        "resource_links": {},
        "external_reference_id": None,
    }


def _generate_messages(account: str, sc: Scenario, now: datetime) -> list[Json]:
    """Outbound messages, newest first, one every `spacing` seconds before `now`.

    Errors are spread evenly: message i carries an error when floor((i+1)*rate) grows.
    """
    count = int(sc.params.get("count", 50))
    spacing = float(sc.params.get("spacing", 30))
    rate = float(
        sc.params.get("rate", {"filtering_spike": 0.3, "optout_trickle": 0.1}.get(sc.name, 0))
    )
    messages = []
    for i in range(count):
        sent = (now - timedelta(seconds=spacing * (i + 1))).replace(microsecond=0)
        status, code, text = "delivered", None, None
        if int((i + 1) * rate) > int(i * rate):
            if sc.name == "filtering_spike":
                code = int(sc.params.get("error_code", 30007))
                status, text = "undelivered", "Message filtered" if code == 30007 else "Undelivered"
            elif sc.name == "optout_trickle":
                # Every fourth error is a bad number; the rest are opt-outs.
                if int((i + 1) * rate) % 4 == 0:
                    status, code, text = "failed", 21211, "Invalid 'To' Phone Number"
                else:
                    status, code, text = (
                        "failed",
                        21610,
                        "Attempt to send to unsubscribed recipient",
                    )
        if sc.name == "late_receipts" and i < int(sc.params.get("late", 5)):
            status, code, text = _late(sc)
        messages.append(_message(account, _name(sc, i), sent, status, code, text))
    return messages


def _generate_alerts(account: str, sc: Scenario, now: datetime) -> list[Json]:
    """The Debugger's alerts, newest first: refused message requests, then (interleaved by
    time) warnings about messages that exist."""
    spacing = float(sc.params.get("alert_spacing", 60))
    refused = [
        _alert(
            account,
            f"refused{i}",
            now - timedelta(seconds=spacing * (i + 1)),
            "error",
            str(sc.params.get("alert_code", 21211)),
            resource=None,
        )
        for i in range(int(sc.params.get("alerts", 0)))
    ]
    about_messages = [
        _alert(
            account,
            f"message{i}",
            now - timedelta(seconds=spacing * (i + 1) + 1),
            "warning",
            "30003",
            resource=sid("SM", account, str(i)),
        )
        for i in range(int(sc.params.get("message_alerts", 0)))
    ]
    return sorted(refused + about_messages, key=lambda a: a["_at"], reverse=True)


def _alert(
    account: str, name: str, at: datetime, level: str, code: str, resource: str | None
) -> Json:
    no = sid("NO", account, name)
    return {
        "_at": at,
        "account_sid": account,
        "alert_text": f"Msg=The request was refused;ErrorCode={code}",
        "api_version": "2010-04-01",
        "date_created": _iso(at + timedelta(seconds=1)),
        "date_generated": _iso(at),
        "date_updated": _iso(at + timedelta(seconds=1)),
        "error_code": code,
        "log_level": level,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "request_method": "POST",
        "request_url": f"https://api.twilio.com/2010-04-01/Accounts/{account}/Messages.json",
        "resource_sid": resource or account,
        "service_sid": None,
        "sid": no,
        "url": f"https://monitor.twilio.com/v1/Alerts/{no}",
    }


def _late(sc: Scenario) -> tuple[str, int | None, str | None]:
    """The newest `late` messages of `late_receipts`: `sent` (the carrier has not answered)
    until the scenario's `receipt` param names their final status, with `error_code`
    (30003 by default: an unreachable handset; 21703 for a Messaging Service failure)."""
    receipt = str(sc.params.get("receipt", "sent"))
    if receipt in ("undelivered", "failed"):
        return receipt, int(sc.params.get("error_code", 30003)), "Delivery receipt"
    return receipt, None, None


def _name(sc: Scenario, i: int) -> str:
    """What message `i`'s SID is made from: its index, after the scenario's `messages` param
    when it has one (other messages than the ones before, e.g. a new burst of them)."""
    batch = sc.params.get("messages")
    return str(i) if batch is None else f"{batch}:{i}"


def _message(
    account: str, name: str, sent: datetime, status: str, code: int | None, text: str | None
) -> Json:
    i = int(name.rpartition(":")[2])
    sm = sid("SM", account, name)
    base = f"/2010-04-01/Accounts/{account}/Messages/{sm}"
    return {
        "_sent": sent,
        "account_sid": account,
        "api_version": "2010-04-01",
        "body": "Your appointment is tomorrow at 10am. Reply STOP to opt out.",
        "date_created": _rfc2822(sent - timedelta(seconds=1)),
        "date_sent": _rfc2822(sent),
        "date_updated": _rfc2822(sent + timedelta(seconds=2)),
        "direction": "outbound-api",
        "error_code": code,
        "error_message": text,
        "from": LOCAL_NUMBER,
        "messaging_service_sid": service_sid(account),
        "num_media": "0",
        "num_segments": "1",
        "price": None if status == "failed" else "-0.00790",
        "price_unit": "USD",
        "sid": sm,
        "status": status,
        "subresource_uris": {"media": base + "/Media.json", "feedback": base + "/Feedback.json"},
        "to": f"+1555{i % 10_000_000:07d}",
        "uri": base + ".json",
    }


def _public(message: Json) -> Json:
    return {k: v for k, v in message.items() if not k.startswith("_")}


# -- envelopes


def _page_window(request: web.Request, total: int) -> tuple[int, int, int]:
    size = max(1, min(int(request.query.get("PageSize", "50")), 1000))
    token = request.query.get("PageToken", "")
    start = int(token[2:]) if token.startswith("PT") and token[2:].isdigit() else 0
    return size, start, min(start + size, total)


def _page_2010(request: web.Request, key: str, records: list[Json]) -> web.Response:
    """The 2010 list envelope: relative `*_page_uri`s, `next_page_uri` carrying PageToken."""
    size, start, end = _page_window(request, len(records))
    page = start // size
    query = {k: v for k, v in request.query.items() if k not in ("Page", "PageToken", "PageSize")}

    def uri(page_no: int, offset: int | None) -> str:
        q = {**query, "PageSize": str(size), "Page": str(page_no)}
        if offset is not None:
            q["PageToken"] = f"PT{offset}"
        return str(URL(request.path).with_query(q))

    return web.json_response(
        {
            "end": max(end - 1, start),
            "first_page_uri": uri(0, None),
            "next_page_uri": uri(page + 1, end) if end < len(records) else None,
            "page": page,
            "page_size": size,
            "previous_page_uri": uri(page - 1, max(start - size, 0)) if start > 0 else None,
            "start": start,
            "uri": str(request.rel_url),
            key: records[start:end],
        }
    )


def _page_v1(request: web.Request, key: str, records: list[Json]) -> web.Response:
    """The v1 envelope: `meta` with absolute URLs (the SDK follows `next_page_url` verbatim)."""
    size, start, end = _page_window(request, len(records))
    page = start // size
    here = URL(_origin(request) + request.path)
    query = {k: v for k, v in request.query.items() if k not in ("Page", "PageToken", "PageSize")}

    def url(page_no: int, offset: int | None) -> str:
        q = {**query, "PageSize": str(size), "Page": str(page_no)}
        if offset is not None:
            q["PageToken"] = f"PT{offset}"
        return str(here.with_query(q))

    return web.json_response(
        {
            key: records[start:end],
            "meta": {
                "page": page,
                "page_size": size,
                "first_page_url": url(0, None),
                "previous_page_url": url(page - 1, max(start - size, 0)) if start > 0 else None,
                "next_page_url": url(page + 1, end) if end < len(records) else None,
                "url": str(here.with_query(dict(request.query))),
                "key": key,
            },
        }
    )


def error_response(status: int, code: int, message: str) -> web.Response:
    """Twilio's classic error body (PROVIDERS.md A0)."""
    return web.json_response(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status=status,
    )


def _not_found(request: web.Request) -> web.Response:
    return error_response(404, 20404, f"The requested resource {request.path} was not found")


# -- small helpers


def _basic_credentials(request: web.Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


def _basic_user(request: web.Request) -> str | None:
    creds = _basic_credentials(request)
    return creds[0] if creds and creds[0] else None


def _basic_password(request: web.Request) -> str | None:
    creds = _basic_credentials(request)
    return creds[1] if creds else None


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _rfc2822(when: datetime) -> str:
    return format_datetime(when.astimezone(UTC))


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_date(value: str | None) -> datetime | None:
    """`DateSent>` as Twilio documents it (`YYYY-MM-DD`) or as the SDK sends it (ISO, `Z`)."""
    if not value:
        return None
    value = value.lstrip("<>=")
    if len(value) == 10:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _is_tollfree(number: str) -> bool:
    return number[:5] in {"+1800", "+1888", "+1877", "+1866", "+1855", "+1844", "+1833"}

"""Twilio SMS/MMS: credentials and account, senders, Messaging Service pool, A2P 10DLC and
toll-free registration, recent delivery errors, and Twilio's status page.

The official SDK does the REST work (paths, paging, error bodies) over `SessionHttpClient`,
which runs on the shared aiohttp session inside the probe's deadline. Every step turns what it
saw into findings through the catalogue (`healthd/catalog/twilio.yaml`); nothing a provider or
the network does escapes as an exception. The auth token is revealed only to build the client.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from twilio.base.exceptions import (
    TwilioException,
    TwilioRestException,
    TwilioServiceException,
)
from twilio.rest import Client

from healthd.catalog import CatalogEntry
from healthd.interfaces import DeliverySink, PollCursor, ProbeContext
from healthd.model import (
    Category,
    DeliveryOutcome,
    DeliveryStage,
    Finding,
    Integration,
    ProviderTraits,
    Status,
)
from probes._http import TransportFailure, catalog_finding, transport_finding
from probes._statuspage import statuspage_finding
from probes._twilio_http import SessionHttpClient

PROVIDER = "twilio"
T = TypeVar("T")

# The message statuses that end a message (specs/twilio, message_enum_status); the ledger
# counts a message once, at the first of them it sees.
FINAL_STATUSES = frozenset({"delivered", "undelivered", "failed", "read", "canceled", "rejected"})
# A message that ended without reaching its recipient (or a refused request, "rejected").
FAILED_STATUSES = frozenset({"failed", "undelivered", "rejected"})

# US/Canada toll-free area codes (NANP): such senders need toll-free verification, not A2P.
TOLLFREE_PREFIXES = ("+1800", "+1888", "+1877", "+1866", "+1855", "+1844", "+1833")

# A non-empty mapping without TWILIO_EDGE/TWILIO_REGION: the SDK falls back to os.environ for
# an empty one, and an edge or region would rewrite the loopback host (PROVIDERS.md A10).
_NO_ENVIRONMENT = {"HEALTHD_TWILIO": "1"}

# The components of status.twilio.com that sending a message goes through.
TWILIO_CORE_COMPONENTS = ("SMS", "MMS", "Programmable Messaging API")


class TwilioOptions(BaseModel):
    """The `options:` block of a Twilio integration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    messaging_base_url: str = "https://messaging.twilio.com"
    senders: list[str] = Field(default_factory=list, description="E.164 sender numbers")
    messaging_service_sid: str | None = None
    # None: check A2P 10DLC whenever a sender or the pool has a US long code.
    a2p: bool | None = None
    # Plain senders' campaigns are found through the account's Messaging Services: at most
    # this many are read (one call each), and the survey is kept this long across runs.
    a2p_max_services: int = Field(default=20, ge=1, le=1000)
    a2p_every: timedelta = timedelta(minutes=15)
    # None: check toll-free verification for senders with a toll-free prefix.
    tollfree: bool | None = None
    statuspage_url: str = "https://status.twilio.com/api/v2/summary.json"
    # The status-page components Twilio messaging depends on, by component id or exact name
    # (a group's id or name stands for its members). Anything else on the page, a carrier
    # or a country, degrades at most (probes/_statuspage.py).
    statuspage_components: list[str] = Field(
        default_factory=lambda: list(TWILIO_CORE_COMPONENTS), min_length=1
    )
    delivery_window: timedelta = timedelta(hours=1)
    # The Debugger's alerts (monitor.twilio.com): message requests the API refused with a
    # 2XXXX code, which leave no message to read. None: not read.
    monitor_base_url: str | None = "https://monitor.twilio.com"
    # Every run reads the whole window: pages enough for a busy hour (10 x 200 messages).
    max_pages: int = Field(default=10, ge=1)
    page_size: int = Field(default=200, ge=1, le=1000)
    # Share of outbound messages with sender_config/account/provider errors (per category).
    error_rate_degraded: float = 0.02
    error_rate_failing: float = 0.10
    # Share filtered by carriers (30007): content degrades, never fails.
    content_rate_degraded: float = 0.05
    # Below this many outbound messages, rates are not judged: counting errors only degrade.
    min_messages: int = 20


class TwilioProbe:
    """See `healthd.interfaces.Probe`."""

    provider: ClassVar[str] = PROVIDER
    traits: ClassVar[ProviderTraits] = ProviderTraits(
        display_name="Twilio", code_prefix="twilio", sms_fallback=True
    )
    Options: ClassVar[type[BaseModel]] = TwilioOptions
    credentials: ClassVar[tuple[str, ...]] = ("account_sid", "auth_token")
    default_base_url: ClassVar[str] = "https://api.twilio.com"

    async def findings(
        self, integration: Integration, options: TwilioOptions, ctx: ProbeContext
    ) -> list[Finding]:
        async with asyncio.TaskGroup() as tasks:
            platform = tasks.create_task(
                statuspage_finding(
                    ctx, TwilioProbe, options.statuspage_url, options.statuspage_components
                )
            )
            findings = await _Run(integration, ctx, options).rest_checks()
        findings.append(platform.result())
        return findings


class _ApiError(Exception):
    """A Twilio error answer, whichever way the SDK reported it."""

    def __init__(self, status: int, code: int | None, message: str) -> None:
        super().__init__(f"HTTP {status} ({code}): {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass(slots=True)
class _Number:
    number: str
    sid: str | None


@dataclass(frozen=True, slots=True)
class _Campaign:
    status: str
    brand_sid: str | None


@dataclass(frozen=True, slots=True)
class _Brand:
    status: str
    failure_reason: str | None


@dataclass(frozen=True, slots=True)
class _A2pSurvey:
    """Where the account keeps each sender: kept across runs, so plain data, no SDK objects."""

    service_of: dict[str, str]  # number -> the Messaging Service whose pool holds it
    foreign: frozenset[str]  # senders the service lists outside the US (no 10DLC)
    campaigns: dict[str, _Campaign | None]  # service -> its campaign, None for none
    brands: dict[str, _Brand]
    complete: bool  # every Messaging Service and every pool was read in full


@dataclass(slots=True)
class _CodeGroup:
    code: int | None
    failed: int = 0
    undelivered: int = 0
    refused: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return self.failed + self.undelivered + self.refused


# A message request the API refused, from a Debugger alert: counted as a message that
# failed with `status` "rejected" (no Twilio status: no message was made).
REFUSED = "rejected"
# Alerts about a message that was made carry its SID; the message read counts those.
MESSAGE_PREFIXES = ("SM", "MM")
# A status change can reach the message list a little after its `date_updated`, so a poll
# hands over again what was updated this long before the newest update the previous
# accepted poll read. At a 1-hour window polled every minute, a busy account's records go
# to the ledger about six times each instead of sixty.
POLL_OVERLAP = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class _Refused:
    """A refused message request, shaped as the message records the delivery step reads."""

    sid: str  # the alert's (NO...): what Twilio support looks up for a request error
    error_code: int | None
    date_sent: datetime | None
    status: str = REFUSED

    @property
    def date_updated(self) -> datetime | None:
        """An alert does not change once made."""
        return self.date_sent


def _refused_request(alert: Any, since: datetime) -> bool:
    """An error-level alert in the window for a request with a 2XXXX code and no message."""
    code, resource = str(alert.error_code or ""), str(alert.resource_sid or "")
    at = alert.date_generated
    return (
        code.startswith("2")
        and not resource.startswith(MESSAGE_PREFIXES)
        and (at is None or at >= since)
    )


class _Run:
    """One probe run: the SDK client and the steps, each returning findings."""

    def __init__(self, integration: Integration, ctx: ProbeContext, opts: TwilioOptions) -> None:
        self.ctx = ctx
        self.opts = opts
        self.catalog = ctx.catalog
        self.integration_id = integration.id
        self.account_sid = _reveal(integration.credentials.get("account_sid"))
        deadline = asyncio.get_running_loop().time() + ctx.timeout
        self.client = Client(
            self.account_sid,
            _reveal(integration.credentials.get("auth_token")),
            http_client=SessionHttpClient(ctx, deadline),
            environment=_NO_ENVIRONMENT,
        )
        self.client.api.base_url = integration.base_url.rstrip("/")
        self.client.messaging.base_url = opts.messaging_base_url.rstrip("/")
        if opts.monitor_base_url is not None:
            self.client.monitor.base_url = opts.monitor_base_url.rstrip("/")

    async def rest_checks(self) -> list[Finding]:
        account = await self.account()
        if account.status is not Status.OK:
            # No usable account (bad token, suspended, down): the other calls would only
            # repeat the same answer.
            return [account]
        senders, pool, delivery = await asyncio.gather(
            self.senders(), self.service_pool(), self.delivery()
        )
        findings = [account, *senders[0], *pool[0], *delivery]
        findings += await self.registration(senders[1], pool[1])
        return findings

    # -- step 1: credentials and account

    async def account(self) -> Finding:
        try:
            acct = await self._call(self.client.api.v2010.accounts(self.account_sid).fetch_async)
        except (_ApiError, TransportFailure) as exc:
            return self._failure(exc, check="auth")
        status = getattr(acct, "status", None)
        if status == "suspended":
            return self._finding("twilio.account_suspended", "account", Status.FAILING, 30002)
        if status == "closed":
            return self._finding("twilio.account_closed", "account", Status.FAILING)
        return self._finding(
            "twilio.account_active", "account", Status.OK, summary="Twilio account is active"
        )

    # -- step 2: senders

    async def senders(self) -> tuple[list[Finding], list[_Number]]:
        if not self.opts.senders:
            return [], []
        results = await asyncio.gather(*(self._lookup_sender(s) for s in self.opts.senders))
        findings = [f for f, _ in results if f is not None]
        numbers = [n for _, n in results if n is not None]
        if not findings:
            findings.append(
                self._finding(
                    "twilio.senders_ok",
                    "sender",
                    Status.OK,
                    summary=f"{len(numbers)} sender number(s) on the account and SMS-capable",
                )
            )
        return findings, numbers

    async def _lookup_sender(self, number: str) -> tuple[Finding | None, _Number | None]:
        numbers = self.client.api.v2010.accounts(self.account_sid).incoming_phone_numbers
        try:
            page = await self._call(lambda: numbers.page_async(phone_number=number, page_size=20))
        except (_ApiError, TransportFailure) as exc:
            return self._failure(exc, check="sender"), None
        match = next((r for r in page if getattr(r, "phone_number", None) == number), None)
        if match is None:
            return self._finding(
                "twilio.sender_not_owned",
                "sender",
                Status.FAILING,
                21606,
                summary=f"Sender {number} is not a phone number of this Twilio account",
            ), None
        capabilities = getattr(match, "capabilities", None) or {}
        if not capabilities.get("sms"):
            return self._finding(
                "twilio.sender_not_sms_capable",
                "sender",
                Status.FAILING,
                21661,
                summary=f"Sender {number} has no SMS capability",
            ), _Number(number, match.sid)
        return None, _Number(number, match.sid)

    # -- step 3: Messaging Service pool

    async def service_pool(self) -> tuple[list[Finding], list[_Number]]:
        mg = self.opts.messaging_service_sid
        if not mg:
            return [], []
        service = self.client.messaging.v1.services(mg)
        try:
            await self._call(service.fetch_async)
            page = await self._call(lambda: service.phone_numbers.page_async(page_size=50))
        except _ApiError as exc:
            if exc.status == 404:
                return [
                    self._finding(
                        "twilio.service_not_found",
                        "sender",
                        Status.FAILING,
                        21701,
                        summary=f"Messaging Service {mg} does not exist on this account",
                    )
                ], []
            return [self._failure(exc, check="sender")], []
        except TransportFailure as exc:
            return [self._failure(exc, check="sender")], []
        pool = [_Number(r.phone_number, r.sid) for r in page if getattr(r, "phone_number", None)]
        if not pool:
            return [
                self._finding(
                    "twilio.service_no_senders",
                    "sender",
                    Status.FAILING,
                    21704,
                    summary=f"Messaging Service {mg} has no phone numbers in its sender pool",
                )
            ], []
        return [
            self._finding(
                "twilio.service_pool_ok",
                "sender",
                Status.OK,
                summary=f"Messaging Service {mg} has {len(pool)} phone number(s) in its pool",
            )
        ], pool

    # -- step 4: registration (A2P 10DLC and toll-free)

    async def registration(
        self, senders: Sequence[_Number], pool: Sequence[_Number]
    ) -> list[Finding]:
        """A2P 10DLC for US long codes, toll-free verification for toll-free numbers.

        A configured Messaging Service sends from its pool, so its campaign is the one
        checked. Without one, each US long code given as a plain sender (the shipped
        examples' form) is looked up in the account's Messaging Services, since a campaign
        belongs to a service: one in no service, or in a service without a campaign, fails
        every message with 30034.
        """
        numbers = [*senders, *pool]
        tollfree = [n for n in numbers if self._is_tollfree(n.number)]
        local_us = [n for n in numbers if n.number.startswith("+1") and n not in tollfree]
        a2p = self.opts.a2p if self.opts.a2p is not None else bool(local_us)
        steps: list[Awaitable[list[Finding]]] = []
        mg = self.opts.messaging_service_sid
        if a2p and mg and pool:
            steps.append(self.a2p(mg))
        elif a2p and not mg and local_us:
            steps.append(self.a2p_of_senders(sorted({n.number for n in local_us})))
        if tollfree and self.opts.tollfree is not False:
            steps.append(self.tollfree_verification(tollfree))
        return [f for found in await asyncio.gather(*steps) for f in found]

    async def a2p(self, mg: str) -> list[Finding]:
        """The configured Messaging Service's campaign and its brand."""
        try:
            campaign = await self._campaign(mg)
            brand = (
                await self._brand(campaign.brand_sid) if campaign and campaign.brand_sid else None
            )
        except (_ApiError, TransportFailure) as exc:
            return [self._failure(exc, check="registration")]
        if campaign is None:
            return [self._finding("twilio.campaign_missing", "registration", Status.FAILING, 30034)]
        findings = self._campaign_findings(campaign.status) + self._brand_findings(brand)
        return findings or [
            self._finding(
                "twilio.a2p_registered",
                "registration",
                Status.OK,
                summary="A2P 10DLC brand approved and campaign verified",
            )
        ]

    async def a2p_of_senders(self, numbers: list[str]) -> list[Finding]:
        """Each US long code's Messaging Service and campaign, found in the account.

        The survey costs 1 + services + 2 x (services holding a sender) calls at most, so it
        is kept for `a2p_every` across runs (registration changes over days, not minutes).
        A survey that failed is not kept: the next run tries again.
        """
        key = f"twilio-a2p:{self.opts.messaging_base_url}:{self.account_sid}:{','.join(numbers)}"
        try:
            if self.ctx.shared is None:
                survey = await self._survey(numbers)
            else:
                survey = await self.ctx.shared.get(
                    key, self.opts.a2p_every, lambda: self._survey(numbers)
                )
        except (_ApiError, TransportFailure) as exc:
            return [self._failure(exc, check="registration")]
        return self._judge_survey(numbers, survey)

    async def _survey(self, numbers: list[str]) -> _A2pSurvey:
        services = self.client.messaging.v1.services
        page = await self._call(partial(services.page_async, page_size=self.opts.a2p_max_services))
        sids = [str(s.sid) for s in page]
        complete = page.next_page_url is None
        pools = await asyncio.gather(
            *(
                self._call(partial(services(mg).phone_numbers.page_async, page_size=1000))
                for mg in sids
            )
        )
        wanted = set(numbers)
        service_of: dict[str, str] = {}
        foreign: set[str] = set()
        for mg, pool_page in zip(sids, pools, strict=True):
            complete = complete and pool_page.next_page_url is None
            for record in pool_page:
                number = getattr(record, "phone_number", None)
                if number in wanted:
                    service_of[number] = mg
                    if getattr(record, "country_code", "US") not in (None, "US"):
                        foreign.add(number)
        holding = sorted(set(service_of.values()))
        found = await asyncio.gather(*(self._campaign(mg) for mg in holding))
        campaigns = dict(zip(holding, found, strict=True))
        brand_sids = sorted({c.brand_sid for c in found if c is not None and c.brand_sid})
        brands = dict(
            zip(brand_sids, await asyncio.gather(*map(self._brand, brand_sids)), strict=True)
        )
        return _A2pSurvey(service_of, frozenset(foreign), campaigns, brands, complete)

    def _judge_survey(self, numbers: list[str], survey: _A2pSurvey) -> list[Finding]:
        findings: list[Finding] = []
        by_campaign: dict[str, tuple[_Campaign, list[str]]] = {}
        for number in numbers:
            if number in survey.foreign:
                continue
            mg = survey.service_of.get(number)
            campaign = survey.campaigns.get(mg) if mg else None
            if mg is None and not survey.complete:
                findings.append(
                    self._finding(
                        "twilio.a2p_not_checked",
                        "registration",
                        Status.UNKNOWN,
                        summary=f"{number} is in none of the first {self.opts.a2p_max_services} "
                        "Messaging Services read, so its A2P 10DLC registration was not checked",
                    )
                )
            elif mg is None or campaign is None:
                where = "is in no Messaging Service"
                if mg is not None:
                    where = f"is in Messaging Service {mg}, which has no A2P 10DLC campaign"
                findings.append(
                    self._finding(
                        "twilio.a2p_unregistered",
                        "registration",
                        Status.FAILING,
                        30034,
                        summary=f"US long code {number} {where}: every message from it "
                        "fails with 30034",
                    )
                )
            else:
                by_campaign.setdefault(mg, (campaign, []))[1].append(number)
        for campaign, senders in (by_campaign[mg] for mg in sorted(by_campaign)):
            brand = survey.brands.get(campaign.brand_sid or "")
            findings += self._campaign_findings(campaign.status, of=senders)
            findings += self._brand_findings(brand, of=senders)
        registered = sum(len(senders) for _, senders in by_campaign.values())
        if registered and not findings:
            findings.append(
                self._finding(
                    "twilio.a2p_registered",
                    "registration",
                    Status.OK,
                    summary=f"{registered} US long code(s) in verified A2P 10DLC campaigns "
                    "of approved brands",
                )
            )
        return findings

    async def _campaign(self, mg: str) -> _Campaign | None:
        """The service's first A2P 10DLC campaign (a service has at most one), or None."""
        campaigns = self.client.messaging.v1.services(mg).us_app_to_person
        page = await self._call(partial(campaigns.page_async, page_size=20))
        first = next(iter(page), None)
        if first is None:
            return None
        brand = getattr(first, "brand_registration_sid", None)
        return _Campaign(str(first.campaign_status or ""), str(brand) if brand else None)

    async def _brand(self, bn: str) -> _Brand:
        brand = await self._call(self.client.messaging.v1.brand_registrations(bn).fetch_async)
        reason = getattr(brand, "failure_reason", None)
        return _Brand(str(getattr(brand, "status", "") or ""), str(reason) if reason else None)

    def _campaign_findings(self, status: str, *, of: Sequence[str] = ()) -> list[Finding]:
        # campaign_status is an open string in the spec: VERIFIED is healthy; the rest waits
        # (PENDING, IN_PROGRESS) or blocks sending (FAILED -> 30034, SUSPENDED -> 30033).
        upper = status.upper()
        if upper == "VERIFIED":
            return []
        code, state, twilio_code = {
            "PENDING": ("twilio.campaign_pending", Status.DEGRADED, 30034),
            "IN_PROGRESS": ("twilio.campaign_pending", Status.DEGRADED, 30034),
            "FAILED": ("twilio.campaign_failed", Status.FAILING, 30034),
            "SUSPENDED": ("twilio.campaign_suspended", Status.FAILING, 30033),
        }.get(upper, ("twilio.campaign_unknown_status", Status.DEGRADED, None))
        return [
            self._finding(
                code,
                "registration",
                state,
                twilio_code,
                summary=f"A2P 10DLC campaign status is {status or 'empty'}" + _of(of),
            )
        ]

    def _brand_findings(self, brand: _Brand | None, *, of: Sequence[str] = ()) -> list[Finding]:
        if brand is None or brand.status == "APPROVED":
            return []
        code, state = {
            "PENDING": ("twilio.brand_pending", Status.DEGRADED),
            "IN_REVIEW": ("twilio.brand_pending", Status.DEGRADED),
            "SUSPENDED": ("twilio.brand_suspended", Status.FAILING),
        }.get(brand.status, ("twilio.brand_failed", Status.FAILING))
        reason = f": {brand.failure_reason}" if brand.failure_reason else ""
        summary = f"A2P 10DLC brand status is {brand.status}{_of(of)}{reason}"
        return [self._finding(code, "registration", state, summary=summary[:300])]

    async def tollfree_verification(self, numbers: Sequence[_Number]) -> list[Finding]:
        verifications = self.client.messaging.v1.tollfree_verifications
        findings: list[Finding] = []
        for number in {n.number: n for n in numbers}.values():
            try:
                page = await self._call(
                    partial(
                        verifications.page_async, tollfree_phone_number_sid=number.sid, page_size=20
                    )
                )
            except (_ApiError, TransportFailure) as exc:
                return [self._failure(exc, check="registration")]
            records = list(page)
            statuses = [str(getattr(v, "status", "")) for v in records]
            finding = self._tollfree_finding(number.number, statuses, records)
            if finding is not None:
                findings.append(finding)
        return findings or [
            self._finding(
                "twilio.tollfree_verified",
                "registration",
                Status.OK,
                summary="Toll-free verification approved for every toll-free sender",
            )
        ]

    def _tollfree_finding(
        self, number: str, statuses: list[str], records: list[Any]
    ) -> Finding | None:
        if "TWILIO_APPROVED" in statuses:
            return None
        if not statuses:
            code, state, summary = (
                "twilio.tollfree_unverified",
                Status.FAILING,
                f"Toll-free sender {number} has no verification",
            )
        elif any(s in ("PENDING_REVIEW", "IN_REVIEW") for s in statuses):
            code, state, summary = (
                "twilio.tollfree_pending",
                Status.DEGRADED,
                f"Toll-free verification of {number} is in review",
            )
        else:
            reason = next((getattr(r, "rejection_reason", None) for r in records), None)
            code, state, summary = (
                "twilio.tollfree_rejected",
                Status.FAILING,
                f"Toll-free verification of {number} was rejected"
                + (f": {reason}" if reason else ""),
            )
        return self._finding(code, "registration", state, 30032, summary=summary[:300])

    # -- step 5: delivery

    async def delivery(self) -> list[Finding]:
        """The whole window's outbound messages, every run: a receipt or a late failure
        (a 30XXX, a 21703 from a Messaging Service) changes a message already read, so
        reading only what was sent since the previous run would never see it. Twilio's
        `DateSent>` filter is to the second (the SDK drops the fraction, rounding the
        boundary down); the rest of that second is dropped here. The window's refused
        message requests (Monitor Alerts) count as failed messages. Each message's status
        goes to the delivery ledger, which counts it once, when its final status appears
        (an alert once, by its SID)."""
        now = self.ctx.clock.now()
        since = now - self.opts.delivery_window
        messages = self.client.api.v2010.accounts(self.account_sid).messages
        try:
            outbound, truncated = await self._read_window(
                lambda: messages.page_async(date_sent_after=since, page_size=self.opts.page_size),
                lambda m: (
                    str(getattr(m, "direction", "")).startswith("outbound")
                    and (m.date_sent is None or m.date_sent >= since)
                ),
            )
        except (_ApiError, TransportFailure) as exc:
            return [self._failure(exc, check="delivery")]
        refused, failure = await self.refused_requests(since)
        records = [*outbound, *refused]
        if self.ctx.deliveries is not None:
            self._hand_over(self.ctx.deliveries, records, now)
        findings = self._judge_delivery(records, now, since, truncated)
        return findings if failure is None else [*findings, failure]

    async def refused_requests(self, since: datetime) -> tuple[list[_Refused], Finding | None]:
        """The window's error-level alerts for refused message requests, every page."""
        if self.opts.monitor_base_url is None:
            return [], None
        alerts = self.client.monitor.v1.alerts
        try:
            found, _ = await self._read_window(
                lambda: alerts.page_async(
                    log_level="error", start_date=since, page_size=self.opts.page_size
                ),
                lambda a: _refused_request(a, since),
            )
        except (_ApiError, TransportFailure) as exc:
            return [], self._failure(exc, check="request_errors")
        return [_Refused(str(a.sid), _int(a.error_code), a.date_generated) for a in found], None

    async def _read_window(
        self, first: Callable[[], Awaitable[Any]], keep: Callable[[Any], bool]
    ) -> tuple[list[Any], bool]:
        """The records `keep` takes, page by page up to `max_pages`; and whether pages were
        left unread."""
        page = await self._call(first)
        kept: list[Any] = []
        for page_no in range(1, self.opts.max_pages + 1):
            kept += [record for record in page if keep(record)]
            if page_no == self.opts.max_pages:
                return kept, page.next_page_url is not None
            next_page = await self._call(page.next_page_async)
            if next_page is None:
                break
            page = next_page
        return kept, False

    def _hand_over(self, sink: DeliverySink, records: list[Any], now: datetime) -> None:
        """The records' statuses to the ledger: all of them the first time, then those
        updated since what the last accepted poll read, less `POLL_OVERLAP` (`DeliverySink`).
        A record with no update time always goes. The cursor is the newest update time
        read, never past healthd's clock: a provider stamping the future cannot hide the
        records after it."""
        until = sink.polled_until(self.integration_id)
        fresh = records
        if until is not None:
            after = until - POLL_OVERLAP
            fresh = [r for r in records if r.date_updated is None or r.date_updated > after]
        stamps = [r.date_updated for r in records if r.date_updated is not None]
        cursor = PollCursor(self.integration_id, min(max(stamps), now)) if stamps else None
        sink.submit([self._outcome(m, now) for m in fresh], cursor=cursor)

    def _outcome(self, message: Any, now: datetime) -> DeliveryOutcome:
        status = str(message.status)
        code = None if message.error_code in (None, 0) else str(message.error_code)
        failed = status in FAILED_STATUSES
        return DeliveryOutcome(
            integration_id=self.integration_id,
            message_id=str(message.sid),
            status=status,
            stage=DeliveryStage.FINAL if status in FINAL_STATUSES else DeliveryStage.PENDING,
            category=self.catalog.outcome_category(
                PROVIDER, code, Category.UNKNOWN if failed or code else None
            ),
            provider_code=code,
            at=now,
            source="poll",
        )

    def _judge_delivery(
        self, outbound: list[Any], now: datetime, since: datetime, truncated: bool
    ) -> list[Finding]:
        total = len(outbound)
        span = _span(now - since) + (" (newest messages only)" if truncated else "")
        groups: dict[int | None, _CodeGroup] = {}
        recent = now - timedelta(hours=24)
        for m in outbound:
            if m.status not in FAILED_STATUSES:
                continue
            group = groups.setdefault(m.error_code, _CodeGroup(m.error_code))
            if m.status == "failed":
                group.failed += 1
            elif m.status == REFUSED:
                group.refused += 1
            else:
                group.undelivered += 1
            # Twilio's support asks for 3 message SIDs from the last 24 hours.
            if len(group.examples) < 3 and (m.date_sent is None or m.date_sent >= recent):
                group.examples.append(m.sid)
        if not groups:
            return [
                self._finding(
                    "twilio.delivery_ok",
                    "delivery",
                    Status.OK,
                    summary=f"{total} outbound message(s) in the last {span}, none failed",
                    count=total,
                )
            ]
        entries = {c: self._entry_for(c) for c in groups}
        per_rate = Counter[Category | None]()
        for c, g in groups.items():
            per_rate[_rate_of(entries[c])] += g.errors
        verdict = {rate: self._rate_status(rate, n, total) for rate, n in per_rate.items()}
        return [
            self._delivery_finding(g, entries[c], verdict[_rate_of(entries[c])], total, span)
            for c, g in sorted(groups.items(), key=lambda kv: -kv[1].errors)
        ]

    def _rate_status(self, category: Category | None, errors: int, total: int) -> Status:
        """Codes that do not count (None, see `_rate_of`) never change health; content
        only degrades; the counting categories degrade or fail past their rates."""
        rate = errors / total if total else 1.0
        judged = total >= self.opts.min_messages
        if category is None:
            return Status.OK
        if category is Category.CONTENT:
            return (
                Status.DEGRADED if judged and rate >= self.opts.content_rate_degraded else Status.OK
            )
        if not judged:
            return Status.DEGRADED
        if rate >= self.opts.error_rate_failing:
            return Status.FAILING
        if rate >= self.opts.error_rate_degraded:
            return Status.DEGRADED
        return Status.OK

    def _entry_for(self, code: int | None) -> CatalogEntry | None:
        return self.catalog.get(PROVIDER, code) if code is not None else None

    def _delivery_finding(
        self, g: _CodeGroup, entry: CatalogEntry | None, status: Status, total: int, span: str
    ) -> Finding:
        parts = []
        if g.failed:
            parts.append(f"{g.failed} failed (never left Twilio)")
        if g.undelivered:
            parts.append(f"{g.undelivered} undelivered (carrier receipt)")
        if g.refused:
            parts.append(f"{g.refused} refused by the API (no message made)")
        title = entry.title if entry else "Twilio error"
        label = f"{g.code} {title}" if g.code is not None else "No error code"
        summary = f"{label}: {' and '.join(parts)} of {total} outbound in the last {span}"
        source = entry or self.catalog.get(PROVIDER, "twilio.delivery_errors")
        return Finding(
            check="delivery",
            status=status,
            code="twilio.delivery_errors",
            provider_code=None if g.code is None else str(g.code),
            category=_category(entry),
            summary=summary,
            remediation=source.fix if source else "",
            count=g.errors,
            examples=tuple(g.examples),
        )

    # -- shared plumbing

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run one SDK call; its errors come out as `_ApiError` or `TransportFailure`."""
        try:
            return await fn()
        except TwilioRestException as exc:
            raise _ApiError(int(exc.status), _int(exc.code), str(exc.msg)) from None
        except TwilioServiceException as exc:
            # twilio-python >= 9.11 raises this for RFC 9457 bodies (`type`, `title`, ...).
            raise _ApiError(int(exc.status), _int(exc.code), str(exc.title)) from None
        except TwilioException as exc:
            raise _page_error(exc) from None
        except (ValueError, KeyError, TypeError):
            # The SDK could not parse a 2xx answer (JSON of the wrong shape).
            raise TransportFailure(
                "bad_response", "the answer did not have the shape Twilio documents"
            ) from None

    def _failure(self, exc: _ApiError | TransportFailure, *, check: str) -> Finding:
        """A step that got no answer, or an error answer, as one finding.

        A 5xx, a 429 or a timeout is Twilio's side (provider category), never auth_invalid:
        only 401 or 20003 means the credentials are wrong.
        """
        if isinstance(exc, TransportFailure):
            return transport_finding(self.ctx, TwilioProbe, exc, check=check)
        if exc.status == 401 or exc.code == 20003:
            return self._finding(
                "twilio.auth_invalid",
                "auth",
                Status.FAILING,
                exc.code or 20003,
                summary=f"Twilio rejected the credentials (HTTP {exc.status}, {exc.code})",
            )
        if exc.status == 429 or exc.code == 20429:
            return self._finding(
                "twilio.rate_limited",
                check,
                Status.DEGRADED,
                exc.code or 20429,
                summary=f"Twilio rate limited the check (HTTP {exc.status})",
            )
        if exc.status >= 500:
            return self._finding(
                "twilio.server_error",
                check,
                Status.FAILING,
                exc.code or exc.status,
                summary=f"Twilio answered HTTP {exc.status}: {exc.message}"[:300],
            )
        entry = self._entry_for(exc.code)
        return Finding(
            check=check,
            status=Status.FAILING,
            code="twilio.request_rejected",
            provider_code=None if exc.code is None else str(exc.code),
            category=_category(entry),
            summary=f"Twilio answered HTTP {exc.status}: {exc.message}"[:300],
            remediation=entry.fix if entry else "See the Twilio code in the summary.",
        )

    def _finding(
        self,
        code: str,
        check: str,
        status: Status,
        provider_code: int | None = None,
        *,
        summary: str | None = None,
        count: int | None = None,
    ) -> Finding:
        return catalog_finding(
            self.catalog,
            PROVIDER,
            code,
            check=check,
            status=status,
            summary=summary,
            provider_code=provider_code,
            count=count,
        )

    def _is_tollfree(self, number: str) -> bool:
        if self.opts.tollfree is True and number in self.opts.senders:
            return True
        return number.startswith(TOLLFREE_PREFIXES)


def _page_error(exc: TwilioException) -> _ApiError | TransportFailure:
    """List calls raise plain `TwilioException("Unable to fetch page", response)`."""
    response = exc.args[1] if len(exc.args) > 1 else None
    status = getattr(response, "status_code", None)
    if not isinstance(status, int):
        return TransportFailure("bad_response", str(exc.args[0]) if exc.args else "SDK error")
    code: int | None = status
    message = "Unable to fetch page"
    try:
        body = json.loads(getattr(response, "text", "") or "")
        if isinstance(body, dict):
            code = _int(body.get("code")) or status
            message = str(body.get("message") or message)
    except ValueError:
        pass
    return _ApiError(status, code, message)


def _of(senders: Sequence[str]) -> str:
    return f" (senders {', '.join(senders)})" if senders else ""


def _category(entry: CatalogEntry | None) -> Category:
    return entry.category if entry else Category.UNKNOWN


def _rate_of(entry: CatalogEntry | None) -> Category | None:
    """The error rate a code's messages add to: their category's, or None if they do not count.

    The catalogue's `counts_against_health` is the word on it, code by code: 30025 is
    sender_config yet only a warning. Content has its own, degrade-only rate whatever the
    entry says; recipient and unknown codes do not count.
    """
    category = _category(entry)
    if category is Category.CONTENT or (entry is not None and entry.counts_against_health):
        return category
    return None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _reveal(value: Any) -> str:
    """Credentials are Secret objects (`.reveal()`); a plain string is accepted as well."""
    if value is None:
        return ""
    reveal = getattr(value, "reveal", None)
    return str(reveal()) if callable(reveal) else str(value)


def _span(delta: timedelta) -> str:
    minutes = max(1, round(delta.total_seconds() / 60))
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h"

"""SendGrid: is the key good, may it send, is the sender authenticated, is mail getting through.

Steps, in order of how much they matter (see `SendGridProbe.findings`):
key (`GET /v3/scopes`), credits (`/v3/user/credits`: a plan whose email credits are used
up refuses mail with 401 "Maximum credits exceeded", which is not a wrong key), sender
(`/v3/verified_senders`, then `/v3/whitelabel/domains`: the configured `from_email`, or
without one, that the account has any verified sender at all), delivery (`/v3/stats` over
a window), and SendGrid's status page beside them.

Rate limits: SendGrid publishes no numbers, but every answer carries `X-RateLimit-Limit`,
`-Remaining` and `-Reset`. A probe must never be what exhausts a customer's limit, so one
run spends at most `rate_limit_share` of the calls that were left when it started; the
optional delivery step is skipped (with an `unknown` finding saying so) when that budget
is used up. The key, credits and sender steps always run: they are what pages a tenant.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from healthd.interfaces import ProbeContext
from healthd.model import Finding, Integration, ProviderTraits, Status
from probes._http import (
    Answer,
    TransportFailure,
    catalog_finding,
    join_url,
    request_json,
    transport_finding,
)
from probes._statuspage import statuspage_finding
from probes._steps import Halt, Steps

PROVIDER = "sendgrid"


class SendGridOptions(BaseModel):
    """The `options:` block of a SendGrid integration. Rates are shares (0.05 = 5%)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    from_email: str | None = None
    stats_window: int = Field(7, ge=1, le=90, description="days of stats to judge rates on")
    # Bounces are the recipients' problem: past this share the finding asks for list
    # cleaning, but it stays `ok`: bounces never make an integration unhealthy.
    bounce_rate_degraded: float = Field(0.1, gt=0, le=1)
    block_rate_degraded: float = Field(0.05, gt=0, le=1)
    # Mailbox providers ask senders to stay under 0.1% spam complaints.
    spam_report_rate_degraded: float = Field(0.001, gt=0, le=1)
    deferred_rate_degraded: float = Field(0.2, gt=0, le=1)
    min_requests: int = Field(100, ge=1, description="fewer requests than this: rates not judged")
    statuspage_url: str = "https://status.sendgrid.com/api/v2/summary.json"
    # status.sendgrid.com components sending depends on, by component id or exact name (a
    # group's id or name stands for its members); any other one degrades at most.
    statuspage_components: tuple[str, ...] = Field(("Mail Sending", "API"), min_length=1)
    rate_limit_share: float = Field(0.1, gt=0, le=1)

    @field_validator("from_email")
    @classmethod
    def _looks_like_email(cls, value: str | None) -> str | None:
        if value is not None and value.count("@") != 1:
            raise ValueError("must be an email address")
        return value


class SendGridProbe:
    """See `healthd.interfaces.Probe`."""

    provider: ClassVar[str] = PROVIDER
    traits: ClassVar[ProviderTraits] = ProviderTraits(
        display_name="SendGrid", code_prefix="sendgrid"
    )
    Options: ClassVar[type[BaseModel]] = SendGridOptions
    credentials: ClassVar[tuple[str, ...]] = ("api_key",)
    default_base_url: ClassVar[str] = "https://api.sendgrid.com"

    async def findings(
        self, integration: Integration, options: SendGridOptions, ctx: ProbeContext
    ) -> list[Finding]:
        api = _Api(ctx, integration, options.rate_limit_share)
        account, platform = await asyncio.gather(
            _account_findings(api, options),
            statuspage_finding(
                ctx, SendGridProbe, options.statuspage_url, options.statuspage_components
            ),
        )
        return [*account, platform]


class _Budget:
    """This run's share of the account's rate limit, learnt from the first answer's headers."""

    def __init__(self, share: float) -> None:
        self.share = share
        self.spent = 0
        self.allowance: float | None = None
        self.remaining: int | None = None
        self.limit: int | None = None
        self.reset: int | None = None

    def observe(self, headers: Mapping[str, str]) -> None:
        self.spent += 1
        try:
            self.limit = int(headers["X-RateLimit-Limit"])
            self.remaining = int(headers["X-RateLimit-Remaining"])
            self.reset = int(headers["X-RateLimit-Reset"])
        except (KeyError, ValueError):
            return
        if self.allowance is None:
            # What was left before this run's first call, times the share.
            self.allowance = self.share * (self.remaining + self.spent)

    def allows(self, calls: int) -> bool:
        if self.allowance is None:
            return True
        return self.spent + calls <= self.allowance


class _Api:
    """SendGrid v3 calls with the key attached, the budget counted, and failures as `Halt`."""

    def __init__(self, ctx: ProbeContext, integration: Integration, share: float) -> None:
        self.ctx = ctx
        self.base_url = integration.base_url or SendGridProbe.default_base_url
        self._integration = integration
        self.budget = _Budget(share)

    async def get(
        self,
        path: str,
        *,
        check: str,
        params: Mapping[str, str] | None = None,
        tolerate: tuple[int, ...] = (),
    ) -> Answer:
        """GET `path`; 2xx and `tolerate`d statuses are returned, anything else halts."""
        # Revealed here only: the header goes to the session, never into a finding or log.
        key = self._integration.credentials["api_key"].reveal()
        headers = {"Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        url = join_url(self.base_url, path)
        try:
            answer = await request_json(self.ctx, "GET", url, params=params, headers=headers)
        except TransportFailure as failure:
            raise Halt(transport_finding(self.ctx, SendGridProbe, failure, check=check)) from None
        self.budget.observe(answer.headers)
        if answer.ok or answer.status in tolerate:
            return answer
        raise Halt(_error_finding(self.ctx, answer, check))

    def finding(self, code: str, *, check: str, status: Status, **kw: Any) -> Finding:
        return catalog_finding(self.ctx.catalog, PROVIDER, code, check=check, status=status, **kw)


def _error_message(answer: Answer) -> str:
    """SendGrid's first `errors[].message`, or '' when the body is not its error shape."""
    data = answer.data
    if isinstance(data, dict) and isinstance(data.get("errors"), list) and data["errors"]:
        first = data["errors"][0]
        if isinstance(first, dict):
            return str(first.get("message") or "")[:200]
    return ""


def _error_finding(ctx: ProbeContext, answer: Answer, check: str) -> Finding:
    """One finding for a SendGrid error status. Only a 401 ever says the key is wrong."""
    message = _error_message(answer)
    said = f" ({message})" if message else ""
    if _out_of_credits(answer):
        return _credits_exhausted(ctx, check, f"SendGrid answered 401{said}")
    if answer.status == 401:
        # "authorization required" is SendGrid's answer when no usable key came with the
        # request; a key it knows but no longer honours gets "invalid, expired, or revoked".
        missing = "authorization required" in message.lower()
        code = "sendgrid.auth_missing" if missing else "sendgrid.auth_invalid"
        summary = (
            "SendGrid received no usable API key" + said
            if missing
            else "SendGrid rejected the API key as invalid, expired or revoked"
        )
        return catalog_finding(
            ctx.catalog,
            PROVIDER,
            code,
            check=check,
            status=Status.FAILING,
            summary=summary,
            provider_code=401,
        )
    if answer.status == 429:
        code, status = "sendgrid.rate_limited", Status.DEGRADED
    elif answer.status == 403:
        code, status = "sendgrid.access_forbidden", Status.FAILING
    elif answer.status >= 500:
        code, status = "sendgrid.server_error", Status.FAILING
    else:
        code, status = "sendgrid.bad_response", Status.FAILING
    return catalog_finding(
        ctx.catalog,
        PROVIDER,
        code,
        check=check,
        status=status,
        summary=f"SendGrid answered HTTP {answer.status}{said}",
        provider_code=answer.status,
    )


_NO_CREDITS = "Maximum credits exceeded"


def _out_of_credits(answer: Answer) -> bool:
    """SendGrid's 401 for a plan out of credits: the key is good, the plan is used up."""
    return answer.status == 401 and "credits" in _error_message(answer).lower()


def _credits_exhausted(ctx: ProbeContext, check: str, summary: str) -> Finding:
    return catalog_finding(
        ctx.catalog,
        PROVIDER,
        "sendgrid.credits_exhausted",
        check=check,
        status=Status.FAILING,
        summary=summary[:300],
        provider_code=401,
    )


def _bad_shape(api: _Api, check: str, what: str) -> Halt:
    return Halt(
        api.finding(
            "sendgrid.bad_response",
            check=check,
            status=Status.FAILING,
            summary=f"SendGrid answered {what} in an unexpected shape",
        )
    )


async def _account_findings(api: _Api, options: SendGridOptions) -> list[Finding]:
    """Key, sender, then delivery if the rate-limit budget allows; a Halt ends them."""
    steps = Steps(api.ctx, SendGridProbe)

    async def body() -> None:
        steps.findings.append(await steps.step("auth", _key(api)))
        steps.findings.append(await steps.step("account", _credits(api)))
        steps.findings.append(await steps.step("sender", _sender(api, options)))
        if api.budget.allows(1):
            steps.findings.extend(await steps.step("delivery", _delivery(api, options)))
        else:
            steps.findings.append(_budget_skip(api, "delivery"))

    return await steps.run(body)


async def _key(api: _Api) -> Finding:
    """`GET /v3/scopes`: 200 means the key is valid; it can send only with `mail.send`.

    A 401 "Maximum credits exceeded" is a good key on a used-up plan: the credit balance
    says until when.
    """
    answer = await api.get("/v3/scopes", check="auth", tolerate=(401,))
    if answer.status == 401:
        found = await _credits(api) if _out_of_credits(answer) else None
        if found is not None and found.code == "sendgrid.credits_exhausted":
            raise Halt(found)
        raise Halt(_error_finding(api.ctx, answer, "auth"))
    scopes = answer.data.get("scopes") if isinstance(answer.data, dict) else None
    if not isinstance(scopes, list):
        raise _bad_shape(api, "auth", "the key's scopes")
    if "mail.send" not in scopes:
        return api.finding(
            "sendgrid.scope_missing",
            check="auth",
            status=Status.FAILING,
            summary="The API key is valid but lacks the mail.send permission",
            provider_code="mail.send",
        )
    return api.finding(
        "sendgrid.key_ok",
        check="auth",
        status=Status.OK,
        summary="API key valid, with mail.send",
    )


async def _credits(api: _Api) -> Finding:
    """`GET /v3/user/credits`: none left and no overage means SendGrid refuses mail.

    A plan that allows overage keeps sending past its credits (`overage` counts them), so
    only `remain` <= 0 with no overage is exhausted. The 401 "Maximum credits exceeded" is
    told the same way, wherever it comes (`_error_finding`).
    """
    answer = await api.get("/v3/user/credits", check="account", tolerate=(401, 403, 404))
    if _out_of_credits(answer):
        return _credits_exhausted(api.ctx, "account", f"SendGrid answered 401 ({_NO_CREDITS})")
    if not answer.ok:
        # The key step proved the key good: a 401 here is a key without this scope.
        return _read_forbidden(api, "account", "the account's email credits")
    data = answer.data if isinstance(answer.data, dict) else {}
    counts = [v for k in ("remain", "total", "overage") if isinstance(v := data.get(k), int)]
    if len(counts) != 3:
        raise _bad_shape(api, "account", "the credit balance")
    remain, total, overage = counts
    resets = f"; they reset on {data['next_reset']}" if data.get("next_reset") else ""
    if remain <= 0 and not overage:
        return _credits_exhausted(
            api.ctx,
            "account",
            f"The account has used all {total} of its email credits, so SendGrid refuses "
            f"mail with 401 Maximum credits exceeded{resets}",
        )
    return api.finding(
        "sendgrid.credits_ok",
        check="account",
        status=Status.OK,
        summary=f"{max(remain, 0)} of {total} email credits left"
        + (f", {overage} over the plan" if overage else "")
        + resets,
    )


async def _sender(api: _Api, options: SendGridOptions) -> Finding:
    """A verified single sender, or else an authenticated domain, must cover `from_email`."""
    if options.from_email is None:
        return await _any_sender(api)
    email = options.from_email.lower()
    domain = email.rpartition("@")[2]
    answer = await api.get("/v3/verified_senders", check="sender", tolerate=(403,))
    if answer.status == 403:
        return _read_forbidden(api, "sender", "sender identities")
    results = answer.data.get("results") if isinstance(answer.data, dict) else None
    if not isinstance(results, list):
        raise _bad_shape(api, "sender", "the verified senders")
    for sender in results:
        if isinstance(sender, dict) and str(sender.get("from_email", "")).lower() == email:
            if sender.get("verified") is True:
                return api.finding(
                    "sendgrid.sender_verified",
                    check="sender",
                    status=Status.OK,
                    summary=f"{options.from_email} is a verified single sender",
                )
    answer = await api.get(
        "/v3/whitelabel/domains", check="sender", params={"domain": domain}, tolerate=(403,)
    )
    if answer.status == 403:
        return _read_forbidden(api, "sender", "authenticated domains")
    if not isinstance(answer.data, list):
        raise _bad_shape(api, "sender", "the authenticated domains")
    matches = [
        d for d in answer.data if isinstance(d, dict) and str(d.get("domain", "")).lower() == domain
    ]
    if any(d.get("valid") is True for d in matches):
        return api.finding(
            "sendgrid.sender_verified",
            check="sender",
            status=Status.OK,
            summary=f"{domain} is an authenticated domain",
        )
    if matches:
        return api.finding(
            "sendgrid.domain_dns_invalid",
            check="sender",
            status=Status.FAILING,
            summary=f"{domain} is authenticated but its DNS does not check out: "
            + _bad_records(matches[0]),
        )
    return api.finding(
        "sendgrid.sender_unverified",
        check="sender",
        status=Status.FAILING,
        summary=f"{options.from_email} is neither a verified sender nor on an authenticated domain",
        provider_code=403,
    )


async def _any_sender(api: _Api) -> Finding:
    """Without `from_email`: SendGrid refuses all mail unless some sender identity exists."""
    answer = await api.get("/v3/verified_senders", check="sender", tolerate=(403,))
    if answer.status == 403:
        return _read_forbidden(api, "sender", "sender identities")
    results = answer.data.get("results") if isinstance(answer.data, dict) else None
    if not isinstance(results, list):
        raise _bad_shape(api, "sender", "the verified senders")
    senders = [s for s in results if isinstance(s, dict) and s.get("verified") is True]
    found = f"{len(senders)} verified single sender(s)"
    if not senders:
        answer = await api.get("/v3/whitelabel/domains", check="sender", tolerate=(403,))
        if answer.status == 403:
            return _read_forbidden(api, "sender", "authenticated domains")
        if not isinstance(answer.data, list):
            raise _bad_shape(api, "sender", "the authenticated domains")
        domains = [
            str(d.get("domain")) for d in answer.data if isinstance(d, dict) and d.get("valid")
        ]
        if not domains:
            return api.finding(
                "sendgrid.no_verified_sender",
                check="sender",
                status=Status.FAILING,
                summary="The account has no verified sender and no authenticated domain, "
                "so SendGrid refuses every email",
                provider_code=403,
            )
        found = f"authenticated domain(s) {', '.join(sorted(domains)[:3])}"
    return api.finding(
        "sendgrid.sender_available",
        check="sender",
        status=Status.OK,
        summary=f"The account has {found}; set options.from_email to check the address "
        "mail is sent from",
    )


def _bad_records(domain: Mapping[str, Any]) -> str:
    """Name each invalid DNS record as `dkim1 (cname s1._domainkey.x -> target)`."""
    dns = domain.get("dns")
    if not isinstance(dns, dict):
        return "no DNS records listed"
    bad = [
        f"{name} ({rec.get('type', '?')} {rec.get('host', '?')} -> {rec.get('data', '?')})"
        for name, rec in sorted(dns.items())
        if isinstance(rec, dict) and rec.get("valid") is not True
    ]
    return ", ".join(bad) or "SendGrid marks the domain invalid without naming a record"


def _read_forbidden(api: _Api, check: str, what: str) -> Finding:
    return api.finding(
        "sendgrid.check_forbidden",
        check=check,
        status=Status.UNKNOWN,
        summary=f"The API key may not read {what}, so this was not checked",
        provider_code=403,
    )


def _budget_skip(api: _Api, check: str) -> Finding:
    budget = api.budget
    resets = ""
    if budget.reset is not None:
        wait = budget.reset - api.ctx.clock.now().timestamp()
        resets = f"; it resets in {max(0, math.ceil(wait))}s"
    return api.finding(
        "sendgrid.rate_budget_low",
        check=check,
        status=Status.UNKNOWN,
        summary=(
            f"Skipped to stay within {budget.share:.0%} of the rate limit: "
            f"{budget.remaining} of {budget.limit} calls left{resets}"
        ),
    )


_RATE_CODES = (
    ("blocks", "block_rate_degraded", "sendgrid.block_rate_high", "blocked"),
    ("deferred", "deferred_rate_degraded", "sendgrid.deferral_rate_high", "deferred"),
    ("spam_reports", "spam_report_rate_degraded", "sendgrid.spam_report_rate_high", "reported"),
)


async def _delivery(api: _Api, options: SendGridOptions) -> list[Finding]:
    """Rates over the window. Bounces are shown but never degrade; the rest may."""
    today = api.ctx.clock.now().date()
    params = {
        "start_date": (today - timedelta(days=options.stats_window - 1)).isoformat(),
        "end_date": today.isoformat(),
        "aggregated_by": "day",
    }
    answer = await api.get("/v3/stats", check="delivery", params=params, tolerate=(403,))
    if answer.status == 403:
        return [_read_forbidden(api, "delivery", "stats")]
    totals = _sum_metrics(answer.data)
    if totals is None:
        raise _bad_shape(api, "delivery", "the stats")
    requests = totals.get("requests", 0)
    window = f"the last {options.stats_window} days"
    if requests < options.min_requests:
        return [
            api.finding(
                "sendgrid.delivery_low_volume",
                check="delivery",
                status=Status.OK,
                summary=f"{requests} emails requested in {window}: too few to judge rates",
                count=requests,
            )
        ]
    findings = [
        api.finding(
            code,
            check="delivery",
            status=Status.DEGRADED,
            summary=f"{_share(totals.get(metric, 0), requests)} of {requests} emails {verb} "
            f"in {window} (threshold {getattr(options, option):.1%})",
            count=totals.get(metric, 0),
        )
        for metric, option, code, verb in _RATE_CODES
        if totals.get(metric, 0) / requests >= getattr(options, option)
    ]
    if not findings:
        findings.append(
            api.finding(
                "sendgrid.delivery_ok",
                check="delivery",
                status=Status.OK,
                summary=f"{requests} emails requested in {window}; block, deferral and "
                "spam-report rates under their thresholds",
                count=requests,
            )
        )
    bounces = totals.get("bounces", 0)
    if bounces:
        high = bounces / requests >= options.bounce_rate_degraded
        findings.append(
            api.finding(
                "sendgrid.bounce_rate_high" if high else "sendgrid.bounces",
                check="delivery",
                status=Status.OK,
                summary=f"{_share(bounces, requests)} of {requests} emails bounced in {window}: "
                "those recipients' mailboxes are bad",
                count=bounces,
            )
        )
    return findings


def _share(part: int, whole: int) -> str:
    return f"{part} ({part / whole:.1%})"


def _sum_metrics(data: Any) -> dict[str, int] | None:
    """Add up `[{"date", "stats": [{"metrics": {...}}]}]`; None when the shape is wrong."""
    if not isinstance(data, list):
        return None
    totals: dict[str, int] = {}
    for day in data:
        stats = day.get("stats") if isinstance(day, dict) else None
        if not isinstance(stats, list):
            return None
        for entry in stats:
            metrics = entry.get("metrics") if isinstance(entry, dict) else None
            if not isinstance(metrics, dict):
                return None
            for name, value in metrics.items():
                if isinstance(value, int):
                    totals[name] = totals.get(name, 0) + value
    return totals


__all__ = ["SendGridOptions", "SendGridProbe"]

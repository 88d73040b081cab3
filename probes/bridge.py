"""The iMessage bridge: a Mac mini in the datacenter running a BlueBubbles-style server.

Assumed API (BlueBubbles server's REST API; every path is configurable in `options`):
- `GET  /api/v1/server/info`      -> the server is up and answers; `data.detected_imessage`
  (null when iMessage is signed out), `data.private_api`, `data.helper_connected`
- `POST /api/v1/message/query`    -> recent messages with `isFromMe`, `error`, `isDelivered`,
  `dateCreated` (ms since the epoch)
- `GET  /api/v1/message/schedule` -> scheduled messages with `status` and `scheduledFor`
Authentication is the server password as a query parameter (`password` by default).

The product re-pushes undelivered iMessages every two minutes while the bridge is away, so
what users feel is a backlog of outgoing messages that never got delivered; the probe
counts those. While the bridge does not answer at all, the other checks are not run: a
dead Mac has no meaningful "signed in" state, and one finding says what matters.

A reverse proxy in front of the Mac answers for it when the Mac is down: a gateway error
(502, 503, 504) or an HTML error page, which the bridge's API never sends (it answers JSON
only). That is the bridge not answering, so `bridge.proxy_error` is unreachable like a
refused connection: it starts the ten-minute timer (`unreachable_since`) instead of failing
the bridge at once. It is not a network error of healthd's: the proxy answered.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Mapping
from datetime import timedelta
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from healthd.durations import Duration
from healthd.interfaces import ProbeContext
from healthd.model import Finding, Integration, ProviderTraits, Status
from probes._http import (
    Answer,
    TransportFailure,
    catalog_finding,
    excerpt,
    join_url,
    request_json,
    transport_finding,
)

PROVIDER = "imessage_bridge"

# What a reverse proxy answers when the server behind it does not: Bad Gateway, Service
# Unavailable, Gateway Timeout.
GATEWAY_STATUSES = frozenset({502, 503, 504})
_TITLE = re.compile(r"<title[^>]*>([^<]{1,200})</title>", re.IGNORECASE)


class BridgeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    info_path: str = "/api/v1/server/info"
    query_path: str = "/api/v1/message/query"
    schedule_path: str = "/api/v1/message/schedule"
    auth_param: str = "password"
    require_private_api: bool = False
    check_backlog: bool = True
    # The backlog takes two requests and changes on the scale of the product's two-minute
    # re-push cycle; it is checked at most this often and the last count shown between.
    backlog_every: Duration = timedelta(minutes=2)
    backlog_window: Duration = timedelta(minutes=30)
    # A message is "stuck" once it has waited longer than one re-push cycle (two minutes).
    stuck_after: Duration = timedelta(minutes=2)
    backlog_degraded: int = Field(3, ge=1)
    backlog_failing: int = Field(20, ge=1)


class BridgeProbe:
    """See `healthd.interfaces.Probe`."""

    provider: ClassVar[str] = PROVIDER
    # Seed 000: the bridge is every workspace's way to iMessage; messages are re-pushed
    # every two minutes, and fall back to SMS only through a connected Twilio.
    traits: ClassVar[ProviderTraits] = ProviderTraits(
        display_name="iMessage bridge",
        code_prefix="bridge",
        tracks_unreachable=True,
        shared_impact="iMessage messages wait and are re-pushed every two minutes; they"
        " deliver as soon as the bridge is back. Recipients without iMessage get SMS"
        " through your Twilio.",
        shared_impact_without_fallback="iMessage messages wait and are re-pushed every two"
        " minutes; they deliver as soon as the bridge is back. With no Twilio connected,"
        " messages to recipients without iMessage just sit.",
    )
    Options: ClassVar[type[BaseModel]] = BridgeOptions
    credentials: ClassVar[tuple[str, ...]] = ("password",)
    default_base_url: ClassVar[str] = "http://127.0.0.1:1234"

    async def findings(
        self, integration: Integration, options: BridgeOptions, ctx: ProbeContext
    ) -> list[Finding]:
        auth = {options.auth_param: integration.credentials["password"].reveal()}
        # One request answers both "is the server up" and "is iMessage signed in"; a
        # separate ping would cost a quarter more requests and prove nothing more.
        try:
            info = await _request(
                ctx, "GET", join_url(integration.base_url, options.info_path), params=auth
            )
        except TransportFailure as failure:
            return [transport_finding(ctx, BridgeProbe, failure)]
        problem = _answer_problem(ctx, info, check="reachability")
        if problem:
            return [problem]
        data = info.data.get("data")
        if not isinstance(data, dict):
            return [_bad_response(ctx, "reachability", "server info has no data object")]
        version = data.get("server_version") or "unknown version"
        findings = [
            catalog_finding(
                ctx.catalog,
                PROVIDER,
                "bridge.ok",
                check="reachability",
                status=Status.OK,
                summary=f"Bridge server {version} answered",
            ),
            _signed_in(ctx, options, data),
        ]
        if options.check_backlog:
            findings.append(await self._recent_backlog(integration, options, ctx, auth))
        return findings

    async def _recent_backlog(
        self, integration: Integration, opts: BridgeOptions, ctx: ProbeContext, auth: dict[str, str]
    ) -> Finding:
        def fetch() -> Awaitable[Finding]:
            return self._backlog(integration, opts, ctx, auth)

        if ctx.shared is None:
            return await fetch()
        return await ctx.shared.get(f"bridge-backlog:{integration.id}", opts.backlog_every, fetch)

    async def _backlog(
        self, integration: Integration, opts: BridgeOptions, ctx: ProbeContext, auth: dict[str, str]
    ) -> Finding:
        now_ms = ctx.clock.now().timestamp() * 1000
        stuck_before = now_ms - opts.stuck_after.total_seconds() * 1000
        query = {
            "limit": 1000,
            "sort": "DESC",
            "after": int(now_ms - opts.backlog_window.total_seconds() * 1000),
            "where": [{"statement": "message.is_from_me = :isFromMe", "args": {"isFromMe": 1}}],
        }
        try:
            messages = await _request(
                ctx,
                "POST",
                join_url(integration.base_url, opts.query_path),
                params=auth,
                json_body=query,
            )
            scheduled = await _request(
                ctx, "GET", join_url(integration.base_url, opts.schedule_path), params=auth
            )
        except TransportFailure as failure:
            return transport_finding(ctx, BridgeProbe, failure, check="backlog")
        for answer in (messages, scheduled):
            problem = _answer_problem(ctx, answer, check="backlog")
            if problem:
                return problem
        stuck = [
            m
            for m in _items(messages.data)
            if m.get("isFromMe")
            and (m.get("error") or not m.get("isDelivered"))
            and _num(m.get("dateCreated")) < stuck_before
        ]
        overdue = [
            s
            for s in _items(scheduled.data)
            if s.get("status") == "error"
            or (s.get("status") == "pending" and _num(s.get("scheduledFor")) < stuck_before)
        ]
        count = len(stuck) + len(overdue)
        status = (
            Status.FAILING
            if count >= opts.backlog_failing
            else Status.DEGRADED
            if count >= opts.backlog_degraded
            else Status.OK
        )
        if status is Status.OK:
            summary = f"No outgoing iMessage stuck for more than {_minutes(opts.stuck_after)}"
        else:
            oldest = min(_num(m.get("dateCreated")) for m in stuck) if stuck else None
            age = f", oldest {_minutes(timedelta(milliseconds=now_ms - oldest))}" if oldest else ""
            summary = (
                f"{len(stuck)} outgoing iMessages undelivered and {len(overdue)} scheduled "
                f"messages overdue or in error{age}"
            )
        return catalog_finding(
            ctx.catalog,
            PROVIDER,
            "bridge.backlog",
            check="backlog",
            status=status,
            summary=summary,
            count=count,
            examples=tuple(str(m.get("guid")) for m in stuck[:3] if m.get("guid")),
        )


def _signed_in(ctx: ProbeContext, opts: BridgeOptions, data: dict[str, Any]) -> Finding:
    if not data.get("detected_imessage"):
        return catalog_finding(
            ctx.catalog,
            PROVIDER,
            "bridge.imessage_signed_out",
            check="imessage",
            status=Status.FAILING,
            summary="iMessage is signed out on the bridge's Mac",
        )
    if (opts.require_private_api or data.get("private_api")) and not data.get("helper_connected"):
        return catalog_finding(
            ctx.catalog,
            PROVIDER,
            "bridge.private_api_disconnected",
            check="imessage",
            status=Status.DEGRADED,
            summary="The bridge's Private API helper is not connected",
        )
    return catalog_finding(
        ctx.catalog,
        PROVIDER,
        "bridge.ok",
        check="imessage",
        status=Status.OK,
        summary="iMessage signed in",
    )


async def _request(
    ctx: ProbeContext,
    method: str,
    url: str,
    *,
    params: Mapping[str, str],
    json_body: Any = None,
) -> Answer:
    """One request to the bridge, whatever its body: `_answer_problem` tells a proxy's HTML
    page from the bridge's JSON, which a request that insists on JSON cannot."""
    return await request_json(
        ctx, method, url, params=params, json_body=json_body, expect_json=False
    )


def _answer_problem(ctx: ProbeContext, answer: Answer, *, check: str) -> Finding | None:
    """A finding for an answer that is not a usable BlueBubbles envelope, else None."""
    if _from_a_proxy(answer):
        return _proxy_error(ctx, answer, check)
    if answer.status == 401:
        return catalog_finding(
            ctx.catalog,
            PROVIDER,
            "bridge.auth_invalid",
            check=check,
            status=Status.FAILING,
            provider_code=401,
            summary="The bridge rejected healthd's server password (401)",
        )
    if not answer.ok:
        message = answer.data.get("message") if isinstance(answer.data, dict) else None
        detail = f"HTTP {answer.status}" + (f": {excerpt(str(message), 120)}" if message else "")
        return _bad_response(ctx, check, detail, provider_code=answer.status)
    if answer.data is None:
        # Not the body itself: a cut-off message list would put message text in a finding.
        detail = (
            f"HTTP {answer.status} with a body that is not JSON ({len(answer.text)} characters)"
        )
        return _bad_response(ctx, check, detail)
    if not isinstance(answer.data, dict):
        return _bad_response(ctx, check, "the answer is not a JSON object")
    return None


def _from_a_proxy(answer: Answer) -> bool:
    """A gateway error or an HTML page: the bridge's API answers JSON only."""
    if answer.status in GATEWAY_STATUSES:
        return True
    content_type = next((v for k, v in answer.headers.items() if k.lower() == "content-type"), "")
    start = answer.text.lstrip()[:15].lower()
    return "html" in content_type.lower() or start.startswith(("<!doctype html", "<html"))


def _proxy_error(ctx: ProbeContext, answer: Answer, check: str) -> Finding:
    title = _TITLE.search(answer.text)
    page = f": {' '.join(title.group(1).split())[:80]}" if title else ""
    return catalog_finding(
        ctx.catalog,
        PROVIDER,
        "bridge.proxy_error",
        check=check,
        status=Status.UNREACHABLE,
        provider_code=answer.status,
        summary=f"iMessage bridge not answering: a proxy in front of it answered "
        f"HTTP {answer.status}{page}",
    )


def _bad_response(
    ctx: ProbeContext, check: str, detail: str, provider_code: int | None = None
) -> Finding:
    return catalog_finding(
        ctx.catalog,
        PROVIDER,
        "bridge.bad_response",
        check=check,
        status=Status.FAILING,
        provider_code=provider_code,
        summary=f"iMessage bridge: {detail}",
    )


def _items(envelope: Any) -> list[dict[str, Any]]:
    data = envelope.get("data") if isinstance(envelope, dict) else None
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else float("inf")


def _minutes(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes}m" if minutes else f"{int(delta.total_seconds())}s"

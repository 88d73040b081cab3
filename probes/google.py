"""Google (Gmail over OAuth): does the refresh token still work, does the mailbox answer,
and may mail go out as the configured address.

Steps: token (the refresh-token grant at `token_url`), mailbox (`users.getProfile`), send-as
(`users.settings.sendAs.get` for `send_as`). The token endpoint speaks OAuth
(`{"error", "error_description"}`); Gmail speaks the Google API error envelope
(`{"error": {"code", "status", "errors": [{"reason"}]}}`), so each has its own reader.

Apps whose OAuth consent screen is in "Testing" get refresh tokens that Google expires 7
days after consent. Google does not say when; healthd can warn ahead only when the config
gives `refresh_token_issued_at`.

The access token is a secret as much as the refresh token: it lives in a local variable,
goes into an Authorization header (or tokeninfo's query, which TransportFailure never
echoes), and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict

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
from probes._steps import Halt, Steps

PROVIDER = "google"
_SCOPE_PREFIX = "https://www.googleapis.com/auth/"
# Testing-mode refresh tokens die 7 days after consent; warn two days ahead.
TESTING_TOKEN_LIFETIME = timedelta(days=7)
EXPIRY_WARNING = timedelta(hours=48)
# Scopes Gmail accepts per method (gmail.v1 discovery doc). gmail.send alone reads nothing.
PROFILE_SCOPES = ("gmail.readonly", "gmail.metadata", "gmail.modify", "gmail.compose")
SEND_AS_SCOPES = ("gmail.settings.basic", "gmail.readonly", "gmail.modify")
# OAuth errors google-auth treats as the server's trouble, not the caller's.
_RETRYABLE_OAUTH = frozenset({"internal_failure", "server_error", "temporarily_unavailable"})
_RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})


class GoogleOptions(BaseModel):
    """The `options:` block of a Google integration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token_url: str = "https://oauth2.googleapis.com/token"
    send_as: str | None = None
    testing_mode: bool = False
    refresh_token_issued_at: datetime | None = None
    tokeninfo_url: str | None = None


class GoogleProbe:
    """See `healthd.interfaces.Probe`."""

    provider: ClassVar[str] = PROVIDER
    traits: ClassVar[ProviderTraits] = ProviderTraits(display_name="Google", code_prefix="google")
    Options: ClassVar[type[BaseModel]] = GoogleOptions
    credentials: ClassVar[tuple[str, ...]] = ("client_id", "client_secret", "refresh_token")
    default_base_url: ClassVar[str] = "https://gmail.googleapis.com"

    async def findings(
        self, integration: Integration, options: GoogleOptions, ctx: ProbeContext
    ) -> list[Finding]:
        """Token, then mailbox, then send-as; a Halt ends them."""
        steps = Steps(ctx, GoogleProbe)
        expiry = _testing_expiry(ctx, options)

        async def body() -> None:
            if expiry is not None:
                # Known from the config alone, so it is reported even if Google cannot be reached.
                steps.findings.append(expiry)
            access_token, scopes = await steps.step(
                "auth", _refresh(integration, options, ctx, expiry)
            )
            if expiry is None:
                steps.findings.append(_token_ok(ctx))
            if scopes is None and options.tokeninfo_url:
                scopes = await _tokeninfo_scopes(ctx, options.tokeninfo_url, access_token)
            base = integration.base_url or GoogleProbe.default_base_url
            gmail = _Gmail(ctx, base, access_token, scopes)
            steps.findings.append(await steps.step("mailbox", _mailbox(gmail)))
            if options.send_as:
                steps.findings.append(await steps.step("sender", _send_as(gmail, options.send_as)))

        return await steps.run(body)


def _finding(ctx: ProbeContext, code: str, *, check: str, status: Status, **kw: Any) -> Finding:
    return catalog_finding(ctx.catalog, PROVIDER, code, check=check, status=status, **kw)


def _token_ok(ctx: ProbeContext) -> Finding:
    return _finding(
        ctx, "google.token_ok", check="auth", status=Status.OK, summary="Refresh token accepted"
    )


def _testing_expiry(ctx: ProbeContext, options: GoogleOptions) -> Finding | None:
    """The testing-mode expiry warning, when the app is in testing mode and the date known."""
    if not options.testing_mode:
        return None
    if options.refresh_token_issued_at is None:
        return _finding(
            ctx,
            "google.refresh_token_expiry_unknown",
            check="auth",
            status=Status.UNKNOWN,
            summary="The OAuth app is in testing mode, so the refresh token expires 7 days "
            "after consent; set refresh_token_issued_at to be warned ahead",
        )
    issued = options.refresh_token_issued_at
    if issued.tzinfo is None:
        issued = issued.replace(tzinfo=ctx.clock.now().tzinfo)
    expires = issued + TESTING_TOKEN_LIFETIME
    left = expires - ctx.clock.now()
    when = expires.strftime("%Y-%m-%d %H:%M UTC")
    if left <= timedelta(0):
        return _finding(
            ctx,
            "google.refresh_token_expired",
            check="auth",
            status=Status.FAILING,
            summary=f"The testing-mode refresh token expired at {when}",
        )
    if left < EXPIRY_WARNING:
        hours = int(left.total_seconds() // 3600)
        return _finding(
            ctx,
            "google.refresh_token_expiring",
            check="auth",
            status=Status.DEGRADED,
            summary=f"The testing-mode refresh token expires at {when} (in {hours}h)",
        )
    return None


async def _refresh(
    integration: Integration, options: GoogleOptions, ctx: ProbeContext, expiry: Finding | None
) -> tuple[str, frozenset[str] | None]:
    """The refresh-token grant: (access token, granted scopes if the answer lists them)."""
    creds = integration.credentials
    # Revealed here only, into the form body of the one request that needs them.
    form = {
        "grant_type": "refresh_token",
        "client_id": creds["client_id"].reveal(),
        "client_secret": creds["client_secret"].reveal(),
        "refresh_token": creds["refresh_token"].reveal(),
    }
    try:
        answer = await request_json(ctx, "POST", options.token_url, data=form)
    except TransportFailure as failure:
        raise Halt(transport_finding(ctx, GoogleProbe, failure, check="auth")) from None
    data = answer.data if isinstance(answer.data, dict) else {}
    token = data.get("access_token")
    if answer.ok and isinstance(token, str) and token:
        scope = data.get("scope")
        return token, _scope_names(scope) if isinstance(scope, str) else None
    raise Halt(_token_error(ctx, answer, data, expiry))


def _token_error(
    ctx: ProbeContext, answer: Answer, data: Mapping[str, Any], expiry: Finding | None
) -> Finding:
    error = str(data.get("error") or "")
    description = str(data.get("error_description") or "")[:200]
    said = f": {description}" if description else ""
    if answer.status == 429:
        code, status = "google.rate_limited", Status.DEGRADED
    elif answer.status >= 500 or answer.status == 408 or error in _RETRYABLE_OAUTH:
        code, status = "google.server_error", Status.FAILING
    elif error == "invalid_grant":
        code, status = "google.auth_invalid", Status.FAILING
        if expiry is not None and expiry.status is Status.FAILING:
            said += " (the app is in testing mode and the 7-day token lifetime has passed)"
    elif error == "invalid_client":
        code, status = "google.client_invalid", Status.FAILING
    elif error:
        code, status = "google.token_rejected", Status.FAILING
    else:
        code, status = "google.bad_response", Status.FAILING
    return _finding(
        ctx,
        code,
        check="auth",
        status=status,
        summary=f"Google's token endpoint answered HTTP {answer.status} {error}{said}".strip(),
        provider_code=error or answer.status,
    )


def _scope_names(scope: str) -> frozenset[str]:
    """`https://www.googleapis.com/auth/gmail.send https://mail.google.com/` -> short names."""
    return frozenset(s.removeprefix(_SCOPE_PREFIX).rstrip("/") for s in scope.split())


async def _tokeninfo_scopes(ctx: ProbeContext, url: str, token: str) -> frozenset[str] | None:
    """Ask tokeninfo which scopes the token carries; None when it will not say."""
    try:
        answer = await request_json(ctx, "GET", url, params={"access_token": token})
    except TransportFailure:
        return None
    scope = answer.data.get("scope") if answer.ok and isinstance(answer.data, dict) else None
    return _scope_names(scope) if isinstance(scope, str) else None


class _Gmail:
    """Gmail calls with the access token attached; Google API errors become findings."""

    def __init__(
        self, ctx: ProbeContext, base: str, token: str, scopes: frozenset[str] | None
    ) -> None:
        self.ctx = ctx
        self.base = base
        self._token = token
        self.scopes = scopes

    async def get(self, path: str, *, check: str, needs: tuple[str, ...]) -> Answer:
        """GET `path`; a 2xx or 404 is returned, anything else halts with a finding."""
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        try:
            answer = await request_json(self.ctx, "GET", join_url(self.base, path), headers=headers)
        except TransportFailure as failure:
            raise Halt(transport_finding(self.ctx, GoogleProbe, failure, check=check)) from None
        if answer.ok or answer.status == 404:
            return answer
        raise Halt(self._error(answer, check, needs))

    def _error(self, answer: Answer, check: str, needs: tuple[str, ...]) -> Finding:
        reason, message = _gmail_reason(answer.data)
        said = f" ({message})" if message else ""
        provider_code: str | int = reason or answer.status
        if answer.status == 429 or reason in _RATE_REASONS:
            code, status = "google.rate_limited", Status.DEGRADED
        elif answer.status >= 500:
            code, status = "google.server_error", Status.FAILING
        elif answer.status == 401:
            code, status = "google.auth_error", Status.FAILING
        elif answer.status == 403 and reason == "insufficientPermissions":
            return _finding(
                self.ctx,
                "google.scope_missing",
                check=check,
                status=Status.FAILING,
                summary=self._missing_scope(needs),
                provider_code=reason,
            )
        elif answer.status == 403:
            code, status = "google.forbidden", Status.FAILING
        else:
            code, status = "google.bad_response", Status.FAILING
        return _finding(
            self.ctx,
            code,
            check=check,
            status=status,
            summary=f"Gmail answered HTTP {answer.status}{said}",
            provider_code=provider_code,
        )

    def _missing_scope(self, needs: tuple[str, ...]) -> str:
        have = f"; the grant has {', '.join(sorted(self.scopes))}" if self.scopes else ""
        return f"Missing Gmail scope: needs {needs[0]} (or {', '.join(needs[1:])}){have}"


def _gmail_reason(data: Any) -> tuple[str, str]:
    """(errors[0].reason, message) from a Google API error envelope, '' where absent."""
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return "", ""
    message = str(error.get("message") or "")[:200]
    errors = error.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("reason") or ""), message
    return "", message


async def _mailbox(gmail: _Gmail) -> Finding:
    answer = await gmail.get("/gmail/v1/users/me/profile", check="mailbox", needs=PROFILE_SCOPES)
    address = answer.data.get("emailAddress") if isinstance(answer.data, dict) else None
    if not answer.ok or not isinstance(address, str):
        return _finding(
            gmail.ctx,
            "google.bad_response",
            check="mailbox",
            status=Status.FAILING,
            summary=f"Gmail's profile answer was HTTP {answer.status} without an address",
        )
    return _finding(
        gmail.ctx,
        "google.mailbox_ok",
        check="mailbox",
        status=Status.OK,
        summary=f"Gmail mailbox {address} answers",
    )


async def _send_as(gmail: _Gmail, email: str) -> Finding:
    """The alias must exist and, for custom from-addresses, be `accepted`."""
    path = f"/gmail/v1/users/me/settings/sendAs/{quote(email, safe='@')}"
    answer = await gmail.get(path, check="sender", needs=SEND_AS_SCOPES)
    if answer.status == 404:
        return _finding(
            gmail.ctx,
            "google.send_as_missing",
            check="sender",
            status=Status.FAILING,
            summary=f"{email} is not a send-as address of this Gmail account",
            provider_code=404,
        )
    verification = answer.data.get("verificationStatus") if isinstance(answer.data, dict) else None
    if verification == "pending":
        return _finding(
            gmail.ctx,
            "google.send_as_unverified",
            check="sender",
            status=Status.FAILING,
            summary=f"{email} is a send-as alias still waiting for its verification email",
            provider_code="pending",
        )
    # The primary address has no verificationStatus (it "only applies to custom aliases").
    return _finding(
        gmail.ctx,
        "google.send_as_ok",
        check="sender",
        status=Status.OK,
        summary=f"{email} may be used as the from-address",
    )


__all__ = ["GoogleOptions", "GoogleProbe"]

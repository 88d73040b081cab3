"""Google OAuth and the Gmail API as the email probe sees them.

Serves `POST /token` (the refresh-token grant), `GET /tokeninfo` and the Gmail paths
`/gmail/v1/users/me/profile` and `/gmail/v1/users/me/settings/sendAs/{email}`, so a probe
points `token_url` at `<sim>/token` and its base URL at `<sim>`. The target is the OAuth
client_id: the token endpoint reads it from the form, and the Gmail paths find it from the
access token the sim minted. Bodies: OAuth errors are `{"error", "error_description"}`;
Gmail errors are the Google API envelope `{"error": {"code", "message", "errors": [...],
"status"}}` (PROVIDERS.md C1/C2).

Scenarios (params in brackets):
- `ok`: tokens granted with gmail.readonly + gmail.send; the mailbox is `email` (default
  sales@example.com); every send-as address asked for exists and is `accepted`.
- `invalid_grant`: 400 `Token has been expired or revoked.`
- `invalid_client`: 401 `invalid_client` (`The OAuth client was not found.`).
- `insufficient_scope`: the grant carries gmail.send only; Gmail reads answer 403
  insufficientPermissions.
Any scenario: `scope_in_token: false` leaves `scope` out of the token answer (then only
`/tokeninfo` tells the scopes).
- `unauthorized_client`: 400 `unauthorized_client` (the token belongs to another client).
- `api_disabled`: Gmail answers 403 accessNotConfigured (Gmail API off in the project).
- `token_rejected`: the token endpoint grants a token that Gmail then refuses (401 authError).
- `send_as_missing`: send-as lookups answer 404 notFound.
- `send_as_pending`: the send-as alias exists with `verificationStatus: pending`.
- `rate_limited`: Gmail answers 429 (`reason`: rateLimitExceeded | userRateLimitExceeded).
- `server_error`: Gmail answers 503 backendError; with `endpoint: token`, the token
  endpoint answers 500 `internal_failure` instead.
"""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web

from healthd.sim.base import ProviderSim, Scenario

_SCOPE = "https://www.googleapis.com/auth/"
_DEFAULT_EMAIL = "sales@example.com"


class GoogleSim(ProviderSim):
    name = "google"
    scenarios = frozenset(
        {
            "ok",
            "invalid_grant",
            "invalid_client",
            "insufficient_scope",
            "token_rejected",
            "unauthorized_client",
            "api_disabled",
            "send_as_missing",
            "send_as_pending",
            "rate_limited",
            "server_error",
        }
    )

    def __init__(self) -> None:
        super().__init__()
        self._tokens: dict[str, str] = {}

    def reset(self) -> None:
        super().reset()
        self._tokens.clear()

    @property
    def access_tokens(self) -> list[str]:
        """Every access token minted so far (tests check none of them leaks)."""
        return list(self._tokens)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/token", self.token),
            web.get("/tokeninfo", self.tokeninfo),
            web.get("/gmail/v1/users/{user}/profile", self.profile),
            web.get("/gmail/v1/users/{user}/settings/sendAs/{email}", self.send_as),
        ]

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        client_id = str(form.get("client_id", ""))
        sc = await self.delay(client_id)
        if form.get("grant_type") != "refresh_token" or not form.get("refresh_token"):
            return _oauth_error(400, "invalid_request", "Missing required parameter: refresh_token")
        if sc.name == "invalid_grant":
            return _oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
        if sc.name == "unauthorized_client":
            return _oauth_error(400, "unauthorized_client", "Unauthorized")
        if sc.name == "invalid_client" or not client_id or not form.get("client_secret"):
            return _oauth_error(401, "invalid_client", "The OAuth client was not found.")
        if sc.name == "server_error" and sc.params.get("endpoint") == "token":
            return _oauth_error(500, "internal_failure", "Internal failure.")
        access_token = "ya29.sim-" + secrets.token_urlsafe(24)
        self._tokens[access_token] = client_id
        body: dict[str, Any] = {
            "access_token": access_token,
            "expires_in": 3599,
            "token_type": "Bearer",
        }
        if sc.params.get("scope_in_token", True):
            body["scope"] = _granted_scopes(sc)
        return web.json_response(body)

    async def tokeninfo(self, request: web.Request) -> web.Response:
        client_id = self._tokens.get(request.query.get("access_token", ""))
        if client_id is None:
            await self.delay("")
            return _oauth_error(400, "invalid_token", "Invalid Value")
        sc = await self.delay(client_id)
        body = {
            "azp": client_id,
            "aud": client_id,
            "sub": "110169484474386276334",
            "scope": _granted_scopes(sc),
            "exp": "1893456000",
            "expires_in": "3599",
            "email": _email(sc),
            "email_verified": "true",
            "access_type": "offline",
        }
        return web.json_response(body)

    async def profile(self, request: web.Request) -> web.Response:
        sc, failure = await self._gmail_gate(request)
        if failure is not None:
            return failure
        body = {
            "emailAddress": _email(sc),
            "messagesTotal": 1204,
            "threadsTotal": 877,
            "historyId": "4893021",
        }
        return web.json_response(body)

    async def send_as(self, request: web.Request) -> web.Response:
        sc, failure = await self._gmail_gate(request)
        if failure is not None:
            return failure
        email = request.match_info["email"]
        if sc.name == "send_as_missing":
            return _gmail_error(404, "NOT_FOUND", "notFound", "Requested entity was not found.")
        primary = email.lower() == _email(sc).lower()
        body: dict[str, Any] = {
            "sendAsEmail": email,
            "displayName": "Sales",
            "replyToAddress": "",
            "signature": "",
            "isPrimary": primary,
            "isDefault": primary,
        }
        if not primary:
            # verificationStatus "only applies to custom from aliases" (discovery doc).
            body["treatAsAlias"] = True
            body["verificationStatus"] = "pending" if sc.name == "send_as_pending" else "accepted"
        return web.json_response(body)

    async def _gmail_gate(self, request: web.Request) -> tuple[Scenario, web.Response | None]:
        """Check the bearer token and the scenario's Gmail-wide failure, the way Gmail does."""
        header = request.headers.get("Authorization", "")
        token = header[len("Bearer ") :] if header.startswith("Bearer ") else ""
        client_id = self._tokens.get(token)
        sc = await self.delay(client_id or "")
        if client_id is None or sc.name == "token_rejected":
            return sc, _auth_error()
        if sc.name == "insufficient_scope":
            return sc, _scope_error()
        if sc.name == "api_disabled":
            message = (
                "Gmail API has not been used in project 1234 before or it is disabled. "
                "Enable it by visiting the API console, then retry."
            )
            return sc, _gmail_error(403, "PERMISSION_DENIED", "accessNotConfigured", message)
        if sc.name == "rate_limited":
            reason = str(sc.params.get("reason", "rateLimitExceeded"))
            return sc, _gmail_error(429, "RESOURCE_EXHAUSTED", reason, "Rate Limit Exceeded")
        if sc.name == "server_error" and sc.params.get("endpoint") != "token":
            message = "The service is currently unavailable."
            return sc, _gmail_error(503, "UNAVAILABLE", "backendError", message)
        return sc, None


def _email(sc: Scenario) -> str:
    return str(sc.params.get("email", _DEFAULT_EMAIL))


def _granted_scopes(sc: Scenario) -> str:
    if sc.name == "insufficient_scope":
        return _SCOPE + "gmail.send"
    return f"{_SCOPE}gmail.readonly {_SCOPE}gmail.send"


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)


def _gmail_error(
    status: int, grpc_status: str, reason: str, message: str, **extra: Any
) -> web.Response:
    detail = {"message": message, "domain": "global", "reason": reason, **extra}
    body = {
        "error": {"code": status, "message": message, "errors": [detail], "status": grpc_status}
    }
    return web.json_response(body, status=status)


def _auth_error() -> web.Response:
    message = (
        "Request had invalid authentication credentials. Expected OAuth 2 access token, "
        "login cookie or other valid authentication credential."
    )
    body = {
        "error": {
            "code": 401,
            "message": message,
            "errors": [
                {
                    "message": "Invalid Credentials",
                    "domain": "global",
                    "reason": "authError",
                    "location": "Authorization",
                    "locationType": "header",
                }
            ],
            "status": "UNAUTHENTICATED",
        }
    }
    return web.json_response(body, status=401, headers={"WWW-Authenticate": 'Bearer realm="x"'})


def _scope_error() -> web.Response:
    body = {
        "error": {
            "code": 403,
            "message": "Request had insufficient authentication scopes.",
            "errors": [
                {
                    "message": "Insufficient Permission",
                    "domain": "global",
                    "reason": "insufficientPermissions",
                }
            ],
            "status": "PERMISSION_DENIED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                    "domain": "googleapis.com",
                    "metadata": {"service": "gmail.googleapis.com", "method": "gmail.users"},
                }
            ],
        }
    }
    return web.json_response(body, status=403)

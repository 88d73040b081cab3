"""Workspace tokens: short-lived JWTs the CRM signs, so a workspace needs no config entry.

The CRM's settings page holds a token minted for one workspace (`tenant` claim) and one
audience (healthd's `api.jwt.audience`), valid until `exp`. healthd verifies it with
PyJWT against the one algorithm configured (HS256 with a shared secret, or EdDSA / RS256
with the CRM's public key): a token signed with another algorithm, `none` included, is
refused, as is one expired (past the leeway), for another audience or issuer, without a
`tenant`, or signed by another key. A refusal is a 401 like an unknown static token; why
is logged at debug, never the token.

A verified token is a tenant Principal: it sees its workspace and the shared
dependencies it uses, and another workspace's id answers 404 exactly as one that does not
exist (`Principal.may_see`).
"""

from __future__ import annotations

from typing import Any

import jwt
import structlog

from healthd.api.auth import Principal, TokenTable
from healthd.api.views import TENANT_PATTERN
from healthd.config import ApiConfig, JwtConfig, verifying_key

log = structlog.get_logger("healthd.api")


class WorkspaceTokens:
    def __init__(self, config: JwtConfig) -> None:
        self._config = config
        self._key = verifying_key(config)

    def authenticate(self, token: str) -> Principal | None:
        c = self._config
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=[c.algorithm],
                audience=c.audience,
                issuer=c.issuer,
                leeway=c.leeway,
                options={"require": ["exp", "aud", "tenant"]},
            )
        except jwt.PyJWTError as exc:
            log.debug("workspace_token_refused", reason=type(exc).__name__)
            return None
        tenant = claims["tenant"]
        if not isinstance(tenant, str) or not TENANT_PATTERN.fullmatch(tenant):
            log.debug("workspace_token_refused", reason="bad tenant claim")
            return None
        return Principal(name=f"workspace:{tenant}", tenant=tenant)


def token_table(api: ApiConfig) -> TokenTable:
    """The API's tokens: the static ones, and workspace tokens when `api.jwt` is set."""
    workspaces = WorkspaceTokens(api.jwt).authenticate if api.jwt is not None else None
    return TokenTable(api.tokens, workspaces)

"""Bearer tokens -> a Principal, and the one place where tenant isolation is applied.

Tokens are kept only as SHA-256 digests after start, so a heap dump or a debug print of
the daemon's objects does not hand out API access. A tenant token sees its own tenant's
integrations and nothing else: another tenant's id answers 404, exactly as an id that
does not exist, so a token cannot be used to learn which ids exist elsewhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aiohttp import web

from healthd.config import TokenConfig


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    tenant: str | None  # None: admin, sees every tenant (or a registry writer)
    # A registry token (`role: registry`): writes the registry (`healthd.api.registry`)
    # and reads nothing: every other path answers 404, as one that does not exist.
    registry_only: bool = False

    @property
    def is_admin(self) -> bool:
        return self.tenant is None and not self.registry_only

    @property
    def may_write_registry(self) -> bool:
        return self.tenant is None

    def may_see(self, tenant: str) -> bool:
        return self.is_admin or self.tenant == tenant


ANONYMOUS_ADMIN = Principal(name="anonymous", tenant=None)
# Where the listener's auth middleware leaves the caller's Principal on each request; here,
# beside the type, so every handler module reads it without importing the application.
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal", Principal)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenTable:
    """Static tokens by digest; `workspaces` verifies the CRM's signed workspace tokens
    when configured (`healthd.api.workspace_tokens.token_table`)."""

    def __init__(
        self,
        tokens: Iterable[TokenConfig],
        workspaces: Callable[[str], Principal | None] | None = None,
    ) -> None:
        self._workspaces = workspaces
        self._by_digest = {
            digest(t.token.reveal()): Principal(
                t.name, t.tenant if t.role == "tenant" else None, t.role == "registry"
            )
            for t in tokens
        }

    @property
    def open(self) -> bool:
        """No tokens configured: every caller is admin (a development setup; logged at start)."""
        return not self._by_digest and self._workspaces is None

    def authenticate(self, authorization: str | None) -> Principal | None:
        if self.open:
            return ANONYMOUS_ADMIN
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        token = token.strip()
        try:
            key = digest(token)
        except UnicodeEncodeError:  # bytes that are not UTF-8 arrive as surrogate escapes
            return None
        found = self._by_digest.get(key)
        if found is None and self._workspaces is not None and token.count(".") == 2:
            return self._workspaces(token)
        return found

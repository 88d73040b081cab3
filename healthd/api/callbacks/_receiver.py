"""What every provider's callback receiver is: verify the request, then read its outcomes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol

from aiohttp import web

from healthd.catalog import Catalog
from healthd.model import Category, DeliveryOutcome, Integration


class Rejected(Exception):
    """The request is not taken: nothing of it is recorded. `outcome` labels the metric."""

    def __init__(self, status: int, outcome: str, detail: str) -> None:
        self.status = status
        self.outcome = outcome
        self.detail = detail
        super().__init__(detail)


def forged(detail: str = "the request's signature does not verify") -> Rejected:
    return Rejected(403, "forged", detail)


def unsigned(header: str) -> Rejected:
    return Rejected(403, "unsigned", f"the request carries no {header} header")


def malformed(detail: str) -> Rejected:
    return Rejected(400, "malformed", detail)


def json_objects(body: str, what: str) -> list[dict[str, Any]]:
    """A verified body that must be a JSON array of objects (`what`, for the 400)."""
    try:
        items = json.loads(body)
    except ValueError:
        raise malformed("the body is not JSON") from None
    if not isinstance(items, list) or not all(isinstance(e, dict) for e in items):
        raise malformed(f"the body must be a JSON array of {what}")
    return items


@dataclass(frozen=True, kw_only=True, slots=True)
class Received:
    """A verified request's context, for the receiver to build outcomes with."""

    integration: Integration
    url: str  # the URL the provider requested, as it signed it
    now: datetime
    catalog: Catalog

    def category(self, code: str | None, default: Category | None) -> Category | None:
        return self.catalog.outcome_category(self.integration.provider, code, default)


class Receiver(Protocol):
    """One provider's callbacks. Verification comes first: a request that does not verify
    raises `Rejected` before anything of its body is used (a 403, recorded nowhere)."""

    provider: ClassVar[str]

    async def outcomes(self, request: web.Request, at: Received) -> list[DeliveryOutcome]: ...

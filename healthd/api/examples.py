"""The support bundle: `GET /api/v1/integrations/{id}/examples?code=30007`.

A provider's support asks for message ids before it looks at a delivery problem: Twilio
for "3 or more Message SIDs from the last 24 hours" (seed 001), and for carrier filtering
(30007, a content code) examples of the past week (seed 002). The answer lists the newest
messages the delivery ledger counted with that code, from the store (callbacks and
polling alike), ready to paste. Tenant-scoped like every integration path: another
tenant's id answers 404, as an id that does not exist.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta

from aiohttp import web

from healthd.api import schemas
from healthd.api.auth import PRINCIPAL
from healthd.api.problems import ApiProblem, shown
from healthd.api.views import Query, answer
from healthd.catalog import Catalog
from healthd.clock import Clock
from healthd.errors import NotFoundError
from healthd.interfaces import Store
from healthd.model import Category, Integration

PATH = "/api/v1/integrations/{id}/examples"
DEFAULT_LIMIT, MAX_LIMIT = 5, 50
DAY, WEEK = timedelta(days=1), timedelta(days=7)
CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")


def example_routes(
    store: Store, integrations: Mapping[str, Integration], catalog: Catalog, clock: Clock
) -> list[web.RouteDef]:
    """The route, for the API's application (its auth middleware sets `PRINCIPAL`)."""

    async def examples(request: web.Request) -> web.Response:
        q = Query(request.query, ("code", "limit"))
        code = q.get("code")
        if code is None or not CODE.fullmatch(code):
            raise ApiProblem(
                400, f"code must be a provider error code such as 30007, not {shown(code or '')}"
            )
        limit = q.integer("limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
        integration_id = request.match_info["id"]
        integration = integrations.get(integration_id)
        if integration is None or not request[PRINCIPAL].may_see(integration.tenant):
            raise NotFoundError(f"no integration by the id of {shown(integration_id)}")
        entry = catalog.get(integration.provider, code)
        # Carrier filtering is judged over days, not hours: its examples go back a week.
        window = WEEK if entry is not None and entry.category is Category.CONTENT else DAY
        found = await store.delivery_examples(integration.id, code, clock.now() - window, limit)
        items = [
            schemas.DeliveryExample(
                message_id=o.message_id, at=o.at, status=o.status, provider_code=o.provider_code
            )
            for o in found
        ]
        return answer(
            schemas.DeliveryExamples(
                integration=integration.id,
                provider_code=code,
                window="7d" if window == WEEK else "24h",
                fix=entry.fix if entry is not None else None,
                examples=items,
                count=len(items),
            )
        )

    return [web.get(PATH, examples)]

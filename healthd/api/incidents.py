"""`GET /api/v1/incidents`: open incidents first, then resolved ones, paged by a cursor.

The list is two runs of the store's incident history (`Store.incident_history`, newest
occurrence first): the open ones, then the resolved ones. The cursor (`healthd.api.pages`)
names the run and the last occurrence given, so a page goes on strictly after it: an
incident opened after the first page does not push the others along, and none repeats.
(One that resolves between two pages may be met again among the resolved: it changed.)

Every filter is the store's, in its query (`IncidentQuery`): a tenant token reads only
its tenant's incidents, so a page is never short of what it could hold and never scans
the whole table to fill itself. A tenant token asking for another tenant gets an empty
list, exactly as for a tenant that has none.
"""

from __future__ import annotations

from dataclasses import replace

from aiohttp import web

from healthd.alerts.rules.table import RULES
from healthd.api import schemas
from healthd.api.auth import PRINCIPAL
from healthd.api.pages import decode_cursor, encode_cursor
from healthd.api.problems import ApiProblem
from healthd.api.views import INCIDENTS_DEFAULT, INCIDENTS_MAX, Query, answer, incident_view
from healthd.interfaces import Store
from healthd.model import IncidentQuery, IncidentRecord
from healthd.registry import probes

RULE_NAMES = tuple(rule.name for rule in RULES)
# The two runs of the list, in order; a cursor names one of them and an occurrence id.
_OPEN, _RESOLVED = "open", "resolved"
PARAMETERS = ("limit", "cursor", "open", "tenant", "provider", "integration", "rule")


def incident_routes(store: Store) -> list[web.RouteDef]:
    """The route, for the API's application (its auth middleware sets `PRINCIPAL`)."""
    return [web.get("/api/v1/incidents", _Handler(store).incidents)]


class _Handler:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def incidents(self, request: web.Request) -> web.Response:
        q = Query(request.query, PARAMETERS)
        limit = q.integer("limit", default=INCIDENTS_DEFAULT, low=1, high=INCIDENTS_MAX)
        want_open = q.boolean("open")
        run, before = _cursor(q.get("cursor"))
        asked = q.tenant()
        own = request[PRINCIPAL].tenant
        query = IncidentQuery(
            limit=limit + 1,  # one more than asked: whether there is a next page
            before=before,
            tenant=own if own is not None else asked,
            provider=q.choice("provider", sorted(probes())),
            integration=q.get("integration"),
            rule=q.choice("rule", RULE_NAMES),
        )
        found: list[tuple[str, IncidentRecord]] = []
        if own is None or asked in (None, own):
            runs = [r for r in (_OPEN, _RESOLVED) if want_open in (None, r == _OPEN)]
            found = await self._read(query, runs[runs.index(run) :] if run in runs else runs, run)
        shown = found[:limit]
        more = len(found) > limit
        return answer(
            schemas.IncidentList(
                incidents=[incident_view(record.incident) for _, record in shown],
                count=len(shown),
                next_cursor=encode_cursor(f"{shown[-1][0]}:{shown[-1][1].id}") if more else None,
            )
        )

    async def _read(
        self, query: IncidentQuery, runs: list[str], cursor_run: str
    ) -> list[tuple[str, IncidentRecord]]:
        """Up to `query.limit` occurrences from `runs` in order; `query.before` applies to
        the run the cursor names, a later run starts at its newest."""
        found: list[tuple[str, IncidentRecord]] = []
        for run in runs:
            if len(found) == query.limit:
                break
            records = await self._store.incident_history(
                replace(
                    query,
                    limit=query.limit - len(found),
                    before=query.before if run == cursor_run else None,
                    open=run == _OPEN,
                )
            )
            found.extend((run, r) for r in records)
        return found


def _cursor(text: str | None) -> tuple[str, int | None]:
    """The run and occurrence id a `next_cursor` names; no cursor: the start of the list."""
    decoded = decode_cursor(text)
    if decoded is None:
        return _OPEN, None
    run, _, number = decoded.partition(":")
    if run not in (_OPEN, _RESOLVED) or not (
        number.isascii() and number.isdigit() and len(number) <= 18
    ):
        raise ApiProblem(400, "cursor is not one this API handed out (next_cursor)")
    return run, int(number)

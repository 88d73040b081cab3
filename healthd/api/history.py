"""The history API: one integration's window, incident occurrences, and the page's summary.

- `GET /api/v1/integrations/{id}/history?window=24h|7d|30d|90d` (default `24h`): the
  window's cells (`healthd.history`), its uptime share and the transitions in it.
- `GET /api/v1/incidents/history?limit=&cursor=&integration=&tenant=&rule=&open=`: every
  kept occurrence, newest first, paged by an opaque cursor; each with how long it lasted.
- `GET /api/v1/history?ids=a,b` or `?limit=&cursor=`: for the integrations named (the
  status page's cards on screen) or a page of those the token may see, in id order, what
  the status page shows: the 90 daily cells, the 24-hour, 7-day and 30-day shares, the
  hourly latency of the last day and the latest incidents. Three reads of the store for
  the page's ids, never the fleet's: at 10,000 integrations a whole fleet's summary held
  the event loop for seconds.

Tenant-scoped like every other path: an integration of another tenant answers exactly as
an id that does not exist (`views.visible_integration`), and a tenant token's incident
history is filtered by its tenant in the store's query, so paging never skips or leaks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime

from aiohttp import web

from healthd import history
from healthd.alerts.rules.table import RULES
from healthd.api import schemas
from healthd.api.auth import PRINCIPAL, Principal
from healthd.api.pages import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, page
from healthd.api.problems import ApiProblem, shown
from healthd.api.views import (
    INCIDENTS_DEFAULT,
    INCIDENTS_MAX,
    Query,
    answer,
    incident_view,
    visible_integration,
)
from healthd.clock import Clock
from healthd.interfaces import Store
from healthd.model import Bucket, IncidentQuery, IncidentRecord, Integration
from healthd.store import DAY_SPAN, HOUR_SPAN

DEFAULT_WINDOW = "24h"
# Incidents the summary reads to give each integration its latest few.
SUMMARY_INCIDENT_SCAN = 2000
SUMMARY_INCIDENTS = 5
_RULE_NAMES = tuple(rule.name for rule in RULES)


def history_routes(
    store: Store, integrations: Mapping[str, Integration], clock: Clock
) -> list[web.RouteDef]:
    """The routes, for the API's application (its auth middleware sets `PRINCIPAL`)."""
    handlers = _Handlers(store, integrations, clock)
    return [
        web.get("/api/v1/integrations/{id}/history", handlers.integration),
        web.get("/api/v1/incidents/history", handlers.incidents),
        web.get("/api/v1/history", handlers.summary),
    ]


def bucket_view(bucket: Bucket) -> schemas.HistoryBucket:
    # Validated like every body: `model_construct` measured twice as slow (12 µs to 6).
    return schemas.HistoryBucket(
        start=bucket.start,
        span_seconds=bucket.span_seconds,
        ok=bucket.ok,
        degraded=bucket.degraded,
        bad=bucket.bad,
        runs=bucket.runs,
        uptime=bucket.uptime,
        latency_mean_seconds=bucket.latency_mean,
        latency_max_seconds=bucket.latency_max if bucket.runs else None,
    )


def occurrence_view(record: IncidentRecord, now: datetime) -> schemas.IncidentOccurrence:
    return schemas.IncidentOccurrence(
        **dict(incident_view(record.incident)),
        id=record.id,
        duration_seconds=history.duration(record.incident, now).total_seconds(),
        events=[schemas.IncidentEvent.model_validate(e) for e in record.events],
    )


class _Handlers:
    def __init__(self, store: Store, integrations: Mapping[str, Integration], clock: Clock) -> None:
        self._store = store
        self._integrations = integrations
        self._clock = clock

    async def integration(self, request: web.Request) -> web.Response:
        q = Query(request.query, ("window",))
        name = q.choice("window", history.WINDOWS) or DEFAULT_WINDOW
        principal = request[PRINCIPAL]
        integration = visible_integration(self._integrations, principal, request.match_info["id"])
        now = self._clock.now()
        found = await history.load(self._store, integration.id, history.WINDOWS[name], now)
        return answer(
            schemas.IntegrationHistory(
                id=integration.id,
                window=name,  # one of WINDOWS, checked above
                start=found.window.first(now),
                uptime=found.share,
                buckets=[bucket_view(b) for b in found.cells],
                transitions=[schemas.Transition.model_validate(t) for t in found.transitions],
            )
        )

    async def incidents(self, request: web.Request) -> web.Response:
        q = Query(request.query, ("limit", "cursor", "integration", "tenant", "rule", "open"))
        limit = q.integer("limit", default=INCIDENTS_DEFAULT, low=1, high=INCIDENTS_MAX)
        tenant, any_visible = _tenant(request[PRINCIPAL], q.tenant())
        query = IncidentQuery(
            limit=limit + 1,  # one more than asked: whether there is a next page
            before=_cursor(q.get("cursor")),
            integration=q.get("integration"),
            tenant=tenant,
            rule=q.choice("rule", _RULE_NAMES),
            open=q.boolean("open"),
        )
        records = await self._store.incident_history(query) if any_visible else []
        now = self._clock.now()
        page = records[:limit]
        more = len(records) > limit
        return answer(
            schemas.IncidentHistory(
                incidents=[occurrence_view(r, now) for r in page],
                count=len(page),
                next_cursor=str(page[-1].id) if more else None,
            )
        )

    async def summary(self, request: web.Request) -> web.Response:
        q = Query(request.query, ("ids", "limit", "cursor"))
        principal = request[PRINCIPAL]
        asked = q.get("ids")
        if asked is not None:
            if q.get("limit") is not None or q.get("cursor") is not None:
                raise ApiProblem(400, "ids names the integrations: no limit or cursor with it")
            wanted = {iid for iid in asked.split(",") if iid}
            if len(wanted) > MAX_LIMIT:
                raise ApiProblem(400, f"ids names at most {MAX_LIMIT} integrations")
            # An id the token may not see is left out, exactly like one that does not exist.
            ids = sorted(i for i in wanted if self._visible(i, principal))
            cursor = None
        else:
            limit = q.integer("limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
            after = decode_cursor(q.get("cursor"))
            seen = sorted(i.id for i in self._integrations.values() if principal.may_see(i.tenant))
            ids, cursor = page(seen, lambda iid: iid, after=after, limit=limit)
        if not ids:
            return answer(schemas.HistorySummary(integrations=[], count=0, next_cursor=cursor))
        now = self._clock.now()
        windows = history.WINDOWS
        bar, day, week = windows[history.BAR_WINDOW], windows["24h"], windows["7d"]
        days = await self._store.fleet_buckets(ids, DAY_SPAN, bar.first(now))
        hours = await self._store.fleet_buckets(ids, HOUR_SPAN, day.first(now))
        weeks = await self._store.fleet_totals(ids, HOUR_SPAN, week.first(now))
        records = await self._store.incident_history(
            IncidentQuery(limit=SUMMARY_INCIDENT_SCAN, tenant=principal.tenant)
        )
        latest: dict[str, list[IncidentRecord]] = defaultdict(list)
        for record in records:
            iid = record.incident.details.get("integration")
            if isinstance(iid, str) and len(latest[iid]) < SUMMARY_INCIDENTS:
                latest[iid].append(record)
        items = [
            _summary(
                self._integrations[iid],
                days.get(iid, []),
                hours.get(iid, []),
                weeks.get(iid),
                latest.get(iid, []),
                now,
            )
            for iid in ids
            if iid in self._integrations  # removed while the store was read
        ]
        return answer(
            schemas.HistorySummary(integrations=items, count=len(items), next_cursor=cursor)
        )

    def _visible(self, iid: str, principal: Principal) -> bool:
        integration = self._integrations.get(iid)
        return integration is not None and principal.may_see(integration.tenant)


def _summary(
    integration: Integration,
    days: Sequence[Bucket],
    hours: Sequence[Bucket],
    week: Bucket | None,
    incidents: Sequence[IncidentRecord],
    now: datetime,
) -> schemas.IntegrationSummary:
    """One integration's page summary from its days, its last day's hours and its week's
    total; the same arithmetic as the history endpoint's windows."""
    windows = history.WINDOWS
    bar = windows[history.BAR_WINDOW]
    day_cells = history.column(bar, days, now)
    hour_cells = history.column(windows[history.LATENCY_WINDOW], hours, now)
    return schemas.IntegrationSummary(
        id=integration.id,
        tenant=integration.tenant,
        uptime_24h=history.share(hours),
        uptime_7d=week.uptime if week else None,
        uptime_30d=history.share(history.in_window(windows["30d"], days, now)),
        days_start=bar.first(now),
        days=[cell.uptime if cell else None for cell in day_cells],
        latency=[cell.latency_mean if cell else None for cell in hour_cells],
        incidents=[occurrence_view(r, now) for r in incidents],
    )


def _tenant(principal: Principal, asked: str | None) -> tuple[str | None, bool]:
    """The tenant to read (a tenant token's own, always; an admin's choice or all), and
    whether the token may see anything: a tenant asking for another tenant sees nothing,
    exactly as for a tenant that does not exist."""
    own = principal.tenant
    if own is None:
        return asked, True
    return own, asked in (None, own)


def _cursor(text: str | None) -> int | None:
    if text is None:
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise ApiProblem(
            400, f"cursor must be a next_cursor from a previous page, not {shown(text)}"
        )
    return int(text)

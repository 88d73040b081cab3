"""The simulator's control API, under `/_sim` on the same app as the simulators.

    GET    /_sim                          every simulator's describe()
    POST   /_sim/{provider}/scenario      {"scenario": "...", "target": "*", "params": {...}}
    POST   /_sim/reset                    every simulator back to `ok`, counters and logs cleared
    GET    /_sim/pagerduty/events         events PagerDuty accepted, oldest first
    DELETE /_sim/pagerduty/events         forget them (and the incidents)
    GET    /_sim/pagerduty/incidents      the incident model built from those events

Errors answer `{"error": "<message>"}`: 400 for bad JSON or an unknown scenario, 404 for an
unknown provider. Tests drive it through `SimClient`; it is not a provider API.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from healthd.sim.base import ANY, ProviderSim, UnknownScenario
from healthd.sim.pagerduty import PagerDutySim

PREFIX = "/_sim"
SIMS = web.AppKey("healthd_sims", dict[str, ProviderSim])


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _sims(request: web.Request) -> dict[str, ProviderSim]:
    return request.app[SIMS]


async def describe(request: web.Request) -> web.Response:
    sims = _sims(request)
    return web.json_response({"providers": {n: sims[n].describe() for n in sorted(sims)}})


def _parse_scenario(body: Any) -> tuple[str, str, dict[str, Any]]:
    """Validate a scenario request; raise ValueError naming the bad field."""
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    scenario, target = body.get("scenario"), body.get("target", ANY)
    params = body.get("params") or {}
    if not isinstance(scenario, str) or not scenario:
        raise ValueError("'scenario' must be a non-empty string")
    if not isinstance(target, str) or not target:
        raise ValueError("'target' must be a non-empty string")
    if not isinstance(params, dict):
        raise ValueError("'params' must be a JSON object")
    return scenario, target, params


async def set_scenario(request: web.Request) -> web.Response:
    name = request.match_info["provider"]
    sim = _sims(request).get(name)
    if sim is None:
        return _error(404, f"no simulator {name!r}; loaded: {', '.join(sorted(_sims(request)))}")
    try:
        scenario, target, params = _parse_scenario(await request.json())
        sim.set_scenario(scenario, target, params)
    except json.JSONDecodeError as exc:
        return _error(400, f"body is not JSON: {exc}")
    except (ValueError, UnknownScenario) as exc:
        return _error(400, str(exc))
    return web.json_response(sim.describe())


async def reset(request: web.Request) -> web.Response:
    for sim in _sims(request).values():
        sim.reset()
    return web.json_response({"reset": sorted(_sims(request))})


def _pagerduty(request: web.Request) -> PagerDutySim:
    sim = _sims(request).get(PagerDutySim.name)
    if not isinstance(sim, PagerDutySim):
        raise web.HTTPNotFound(
            text=json.dumps({"error": "the pagerduty simulator is not loaded"}),
            content_type="application/json",
        )
    return sim


async def pagerduty_events(request: web.Request) -> web.Response:
    return web.json_response({"events": _pagerduty(request).events})


async def clear_pagerduty(request: web.Request) -> web.Response:
    _pagerduty(request).clear()
    return web.json_response({"events": []})


async def pagerduty_incidents(request: web.Request) -> web.Response:
    return web.json_response({"incidents": _pagerduty(request).incidents()})


def routes() -> list[web.RouteDef]:
    return [
        web.get(PREFIX, describe),
        web.post(f"{PREFIX}/reset", reset),
        web.get(f"{PREFIX}/pagerduty/events", pagerduty_events),
        web.delete(f"{PREFIX}/pagerduty/events", clear_pagerduty),
        web.get(f"{PREFIX}/pagerduty/incidents", pagerduty_incidents),
        web.post(f"{PREFIX}/{{provider}}/scenario", set_scenario),
    ]

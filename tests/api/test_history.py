"""The history API on a real daemon over HTTP, with time moved by the injectable clock."""

from __future__ import annotations

import asyncio
import re
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from healthd import cli
from healthd.clock import FakeClock
from healthd.daemon import Daemon
from healthd.history_report import NO_DATA
from healthd.sim.app import SimulatorThread
from healthd.sim.client import SimClient
from tests.api.conftest import ACME_TOKEN, GLOBEX_TOKEN, assert_problem, call, fleet_config
from tests.conftest import running_daemon, write_config

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("secrets_env")]

MIDNIGHT = datetime(2026, 3, 1, tzinfo=UTC)


async def _runs(
    d: Daemon, clock: FakeClock, sim_client: SimClient, script: str, every: timedelta
) -> None:
    """One run of bridge-dc1 per letter, `every` apart: `o` answers, `x` is offline."""
    for letter in script:
        scenario = "ok" if letter == "o" else "offline"
        sim_client.set_scenario("imessage_bridge", scenario, target="dc1")
        await d.runner.run_once("bridge-dc1")
        clock.advance(every)


async def _history(d: Daemon, window: str, iid: str = "bridge-dc1") -> Any:
    answer = await call(d.url, "GET", f"/api/v1/integrations/{iid}/history?window={window}")
    assert answer.status == 200, answer.text
    return answer.json


async def test_the_uptime_of_a_scripted_day_is_exact(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    clock = FakeClock(MIDNIGHT)
    script = "o" * 20 + "x" * 6 + "o" * 22  # 48 runs, half an hour apart; 13:00-15:30 down
    async with running_daemon(fleet_config(sim), clock=clock) as d:
        await _runs(d, clock, sim_client, script, timedelta(minutes=30))
        clock.set(MIDNIGHT + timedelta(hours=23, minutes=59))
        day = await _history(d, "24h")
        bar = await _history(d, "90d")

    assert day["uptime"] == 42 / 48
    assert [b["bad"] for b in day["buckets"]] == [0] * 10 + [2, 2, 2] + [0] * 11
    assert len(bar["buckets"]) == 90
    assert bar["buckets"][-1]["start"] == MIDNIGHT.isoformat()
    assert bar["buckets"][-1]["uptime"] == 42 / 48
    assert {t["to_status"] for t in day["transitions"]} == {"unreachable", "ok"}


async def test_history_is_kept_across_a_restart(
    sim: SimulatorThread, sim_client: SimClient, tmp_path: Path
) -> None:
    doc = fleet_config(sim)
    doc["store"] = f"sqlite:///{tmp_path / 'healthd.db'}"
    clock = FakeClock(MIDNIGHT)
    async with running_daemon(doc, clock=clock) as d:
        await _runs(d, clock, sim_client, "ooxxx", timedelta(minutes=1))
    async with running_daemon(doc, clock=clock) as d:
        await _runs(d, clock, sim_client, "oo", timedelta(minutes=1))
        day = await _history(d, "24h")

    [hour] = [b for b in day["buckets"] if b["runs"]]
    assert (hour["ok"], hour["bad"]) == (4, 3)
    # Newest first: the second daemon's recovery, then everything the first one saw.
    assert [t["kind"] for t in day["transitions"]] == [
        "became_reachable",
        "recovered",
        "failed",
        "became_unreachable",
        "recovered",
    ]


def _flapping_config(sim: SimulatorThread) -> Any:
    doc = fleet_config(sim)
    doc["integrations"][0]["page"] = True  # bridge-acme1 pages when it fails
    return doc


async def _flap(d: Daemon, clock: FakeClock, sim_client: SimClient, times: int) -> None:
    """bridge-acme1 fails (three bad runs) and recovers (two good ones), `times` times."""
    for _ in range(times):
        for scenario, runs in (("auth_fail", 3), ("ok", 2)):
            sim_client.set_scenario("imessage_bridge", scenario, target="acme1")
            for _ in range(runs):
                clock.advance(timedelta(minutes=1))
                await d.runner.run_once("bridge-acme1")
                await d.engine.evaluate()


async def test_a_flapping_integrations_three_incidents_are_three_records(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    clock = FakeClock(MIDNIGHT)
    async with running_daemon(_flapping_config(sim), clock=clock) as d:
        await _flap(d, clock, sim_client, 3)
        body = (await call(d.url, "GET", "/api/v1/incidents/history?integration=bridge-acme1")).json

    incidents = body["incidents"]
    assert len(incidents) == 3 and body["next_cursor"] is None
    assert len({i["id"] for i in incidents}) == 3
    assert all(not i["open"] and i["duration_seconds"] > 0 for i in incidents)
    # Each occurrence with its own page and its own resolve.
    for incident in incidents:
        assert [(e["action"], e["channel"]) for e in incident["events"]] == [
            ("trigger", "pagerduty"),
            ("resolve", "pagerduty"),
        ]
    opened = [i["opened_at"] for i in incidents]
    assert opened == sorted(opened, reverse=True)


async def test_incident_history_pages_through_every_occurrence_once(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    clock = FakeClock(MIDNIGHT)
    async with running_daemon(_flapping_config(sim), clock=clock) as d:
        await _flap(d, clock, sim_client, 3)
        seen: list[int] = []
        path = "/api/v1/incidents/history?limit=2"
        while True:
            page = (await call(d.url, "GET", path)).json
            seen += [i["id"] for i in page["incidents"]]
            if page["next_cursor"] is None:
                break
            path = f"/api/v1/incidents/history?limit=2&cursor={page['next_cursor']}"

    assert len(seen) == 3 and seen == sorted(seen, reverse=True)


async def test_a_tenant_token_sees_only_its_own_incident_history(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    clock = FakeClock(MIDNIGHT)
    async with running_daemon(_flapping_config(sim), clock=clock) as d:
        await _flap(d, clock, sim_client, 1)
        own = (await call(d.url, "GET", "/api/v1/incidents/history", ACME_TOKEN)).json
        other = (await call(d.url, "GET", "/api/v1/incidents/history", GLOBEX_TOKEN)).json
        asked = "/api/v1/incidents/history?tenant=acme"
        asking = (await call(d.url, "GET", asked, GLOBEX_TOKEN)).json

    assert [i["tenant"] for i in own["incidents"]] == ["acme"]
    assert other["incidents"] == [] and asking["incidents"] == []


async def test_another_tenants_history_is_404_like_an_unknown_id(sim: SimulatorThread) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        other = await call(d.url, "GET", "/api/v1/integrations/bridge-globex1/history", ACME_TOKEN)
        unknown = await call(d.url, "GET", "/api/v1/integrations/bridge-nobody/history", ACME_TOKEN)

    assert (
        assert_problem(other, 404)["detail"].replace("globex1", "nobody")
        == (assert_problem(unknown, 404)["detail"])
    )


@pytest.mark.parametrize(
    ("path", "names"),
    [
        ("/api/v1/integrations/bridge-dc1/history?window=1y", "window"),
        ("/api/v1/integrations/bridge-dc1/history?days=3", "days"),
        ("/api/v1/incidents/history?cursor=abc", "cursor"),
        ("/api/v1/incidents/history?rule=nope", "rule"),
        ("/api/v1/incidents/history?limit=0", "limit"),
        ("/api/v1/history?tenant=acme", "tenant"),
        ("/api/v1/history?ids=bridge-dc1&limit=5", "ids"),
        ("/api/v1/history?ids=" + ",".join(f"b{n}" for n in range(1001)), "ids"),
        ("/api/v1/history?cursor=nope", "cursor"),
    ],
)
async def test_a_bad_history_query_is_a_400_naming_the_parameter(
    sim: SimulatorThread, path: str, names: str
) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        answer = await call(d.url, "GET", path)

    assert names in assert_problem(answer, 400)["detail"]


async def test_the_summary_matches_each_integrations_history(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    clock = FakeClock(MIDNIGHT)
    async with running_daemon(fleet_config(sim), clock=clock) as d:
        await _runs(d, clock, sim_client, "ooox", timedelta(hours=1))
        summary = (await call(d.url, "GET", "/api/v1/history")).json
        day, bar, month = [await _history(d, w) for w in ("24h", "90d", "30d")]

    [dc1] = [i for i in summary["integrations"] if i["id"] == "bridge-dc1"]
    assert dc1["days"] == [b["uptime"] for b in bar["buckets"]]
    assert (
        (dc1["uptime_24h"], dc1["uptime_30d"]) == (day["uptime"], month["uptime"]) == (0.75, 0.75)
    )
    assert dc1["latency"] == [b["latency_mean_seconds"] for b in day["buckets"]]


async def test_the_summary_reads_only_the_ids_asked_for(sim: SimulatorThread) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        summary = (await call(d.url, "GET", "/api/v1/history?ids=bridge-dc1,bridge-acme2")).json

    assert [i["id"] for i in summary["integrations"]] == ["bridge-acme2", "bridge-dc1"]
    assert summary["next_cursor"] is None


async def test_a_tenant_asking_for_anothers_id_in_the_summary_gets_nothing_of_it(
    sim: SimulatorThread,
) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        asked = "/api/v1/history?ids=bridge-globex1,bridge-acme1,bridge-nobody"
        summary = (await call(d.url, "GET", asked, ACME_TOKEN)).json

    assert [i["id"] for i in summary["integrations"]] == ["bridge-acme1"]


async def test_the_summary_without_ids_is_paged_in_id_order(sim: SimulatorThread) -> None:
    async with running_daemon(fleet_config(sim)) as d:
        first = (await call(d.url, "GET", "/api/v1/history?limit=3")).json
        rest = (await call(d.url, "GET", f"/api/v1/history?cursor={first['next_cursor']}")).json

    assert [i["id"] for i in first["integrations"]] == [
        "bridge-acme1",
        "bridge-acme2",
        "bridge-dc1",
    ]
    assert [i["id"] for i in rest["integrations"]] == ["bridge-globex1"]
    assert rest["next_cursor"] is None


# -- healthd history ID ---------------------------------------------------------------------


async def _cli(*argv: str) -> int:
    """`healthd` in a thread: its blocking HTTP calls must not stall the daemon's loop."""
    return await asyncio.to_thread(cli.main, list(argv))


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")


def _report(out: str) -> str:
    """What the command printed, without the daemon's log lines (the same stdout here)."""
    return "".join(line for line in out.splitlines(True) if not LOG_LINE.match(line))


async def test_healthd_history_prints_shares_bar_incidents_and_changes(
    sim: SimulatorThread, sim_client: SimClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = FakeClock(MIDNIGHT + timedelta(hours=10))
    doc = _flapping_config(sim)
    path = write_config(tmp_path / "healthd.yaml", doc)
    async with running_daemon(doc, clock=clock) as d:
        await _flap(d, clock, sim_client, 1)
        code = await _cli("history", "bridge-acme1", "--config", str(path), "--url", d.url)
        shown = await _history(d, "24h", "bridge-acme1")

    out = _report(capsys.readouterr().out)
    assert code == 0
    assert out.startswith("bridge-acme1 · iMessage bridge · workspace acme · ok")
    assert shown["uptime"] == 2 / 5  # three failed runs, two good ones
    assert "Uptime      24 h 40.00%   7 d 40.00%   30 d 40.00%" in out
    assert "90 days     " + NO_DATA * 89 + "▁" in out
    assert "10:03 UTC  lasted 2 min" in out  # opened on the third bad run, resolved two later
    assert "unknown -> failing" in out and "failing -> ok" in out


async def test_healthd_history_of_an_unknown_id_exits_1(
    sim: SimulatorThread, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = fleet_config(sim)
    path = write_config(tmp_path / "healthd.yaml", doc)
    async with running_daemon(doc) as d:
        code = await _cli("history", "bridge-nobody", "--config", str(path), "--url", d.url)

    assert code == 1
    assert "no integration by the id of 'bridge-nobody'" in capsys.readouterr().err


async def test_healthd_history_without_a_daemon_exits_3(
    sim: SimulatorThread, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path / "healthd.yaml", fleet_config(sim))
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unused.getsockname()[1]}"
        code = await _cli("history", "bridge-dc1", "--config", str(path), "--url", url)

    assert code == 3
    assert f"no healthd answered at {url}" in capsys.readouterr().err


async def test_the_configured_retention_drops_older_days(
    sim: SimulatorThread, sim_client: SimClient
) -> None:
    doc = fleet_config(sim)
    doc["history"] = {"hours": "1d", "days": "2d"}
    clock = FakeClock(MIDNIGHT)
    async with running_daemon(doc, clock=clock) as d:
        await _runs(d, clock, sim_client, "oooo", timedelta(days=1))
        clock.set(MIDNIGHT + timedelta(days=3, hours=12))
        bar = await _history(d, "90d")
        week = await _history(d, "7d")

    assert [b["start"][:10] for b in bar["buckets"] if b["runs"]] == ["2026-03-03", "2026-03-04"]
    assert [b["start"] for b in week["buckets"] if b["runs"]] == [
        (MIDNIGHT + timedelta(days=3)).isoformat()
    ]

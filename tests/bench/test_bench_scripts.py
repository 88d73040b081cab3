"""The bench scripts still run end to end, on tiny sizes. Figures are printed, never asserted."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def run_script(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_sweep_runs_every_case_and_prints_the_targets() -> None:
    stdout = run_script(
        "bench/sweep.py",
        "--integrations", "50",
        "--concurrency", "10", "25",
        "--latency", "0.01",
        "--store", "sqlite", "memory",
        "--no-install",
    )  # fmt: skip
    assert "## Targets (issue 2)" in stdout
    for concurrency in ("10", "25"):
        for store in ("sqlite", "memory"):
            assert f"| imessage_bridge | 50 | {concurrency} | {store} | 50/50 |" in flat(stdout)


def test_sweep_runs_twilio_and_the_mix_and_counts_every_api_they_call() -> None:
    stdout = run_script(
        "bench/sweep.py",
        "--provider", "twilio", "mixed",
        "--integrations", "40",
        "--concurrency", "10",
        "--latency", "0.01",
        "--store", "memory",
        "--no-install",
    )  # fmt: skip
    text = flat(stdout)
    for provider in ("twilio", "mixed"):
        assert f"| {provider} | 40 | 10 | memory | 40/40 |" in text
    # The cost table's last column: calls per probe by simulated API, e.g. "twilio 9.00".
    calls = {
        line.split("|")[1].strip(): line.split("|")[-2]
        for line in stdout.splitlines()
        if line.startswith("| ") and "twilio " in line.split("|")[-2]
    }
    assert "twilio " in calls["twilio"]
    # One status-page fetch serves every probe of a sweep (healthd.http.SharedAnswers).
    assert "statuspage 1.00" not in calls["twilio"]
    for api in ("google", "imessage_bridge", "sendgrid", "twilio"):
        assert f"{api} " in calls["mixed"]


def flat(text: str) -> str:
    """The output with runs of spaces collapsed, so table rows compare without padding."""
    return " ".join(text.split())


def test_metrics_bench_prints_render_cost_and_series_count_before_and_after() -> None:
    stdout = run_script(
        "bench/metrics.py", "--integrations", "100", "300", "--repeat", "1", "--before", str(REPO)
    )  # fmt: skip
    rows = [line.split("|")[1:4] for line in stdout.splitlines() if line.startswith("| ")]
    counts = {
        (int(n.strip().replace(",", "")), tree.strip()): int(series.strip().replace(",", ""))
        for n, tree, series in rows[1:]
    }
    assert set(counts) == {(n, tree) for n in (100, 300) for tree in ("before", "after")}
    assert counts[(300, "after")] > counts[(100, "after")] > 10  # the aggregates, some detail


def test_scrape_bench_measures_probing_with_and_without_scrapes() -> None:
    stdout = run_script(
        "bench/scrape.py", "--integrations", "20", "--interval", "1", "--seconds", "1",
        "--failing", "0.1", "--latency", "0.01",
    )  # fmt: skip
    windows = [line for line in stdout.splitlines() if line.startswith("| after ")]
    assert [w.split("|")[2].strip() for w in windows] == ["no scrapes", "scraped back to back"]


def test_api_bench_runs_every_scenario() -> None:
    stdout = run_script("bench/api.py", "--integrations", "50", "--tenants", "5")
    for scenario in ("list first page", "list one tenant", "live tenant check"):
        assert scenario in stdout


def test_transport_floor_runs_and_every_request_is_answered() -> None:
    stdout = run_script(
        "bench/transport.py",
        "--integrations", "50",
        "--concurrency", "10",
        "--latency", "0.01",
    )  # fmt: skip
    assert "| 50 | 10 | 50/50 |" in flat(stdout)


def test_daemon_bench_counts_probes_of_a_running_healthd() -> None:
    stdout = run_script(
        "bench/daemon.py",
        "--integrations", "20",
        "--interval", "2",
        "--seconds", "5",  # every 2-2.5 s slot fires at least once, /metrics up to 1 s old
        "--latency", "0.01",
    )  # fmt: skip
    # The window, the start-up and the floor: one row each.
    window, _starts, floor = (
        line for line in stdout.splitlines() if line.startswith("| after | 20 ")
    )
    assert float(window.split("|")[4].replace(",", "")) > 0  # probes ran in the window
    assert float(floor.split("|")[5]) > 0  # plain aiohttp's CPU per request, in the same run


def test_daemon_bench_runs_a_mixed_fleet_and_counts_its_probes_by_provider() -> None:
    stdout = run_script(
        "bench/daemon.py",
        "--fleet", "mixed",
        "--integrations", "20",
        "--interval", "2",
        "--seconds", "5",
        "--latency", "0.01",
        "--no-floor",
    )  # fmt: skip
    window, _starts = (line for line in stdout.splitlines() if line.startswith("| after | 20 "))
    cells = window.split("|")
    counts = {
        provider: float(count.replace(",", ""))
        for provider, count in (part.split() for part in cells[-2].split(","))
    }
    # Every provider of the mix ran since start, and the split adds up to the window's total.
    assert sorted(counts) == ["google", "imessage_bridge", "sendgrid", "twilio"]
    assert sum(counts.values()) == float(cells[4].replace(",", ""))


def test_engine_bench_times_each_case_before_and_after() -> None:
    stdout = run_script(
        "bench/engine.py", "--integrations", "300", "--repeat", "1", "--steps", "3"
    )  # fmt: skip
    rows = [line.split("|") for line in stdout.splitlines() if line.startswith("| 300 ")]
    cases = [cells[3].strip() for cells in rows]
    quiet = int(rows[1][4].strip())  # the burst of 1,000: every quiet integration of 300
    assert cases[:8] == [
        "one change",
        "burst in one step",
        "burst over 3 steps",
        "burst in one step",
        "burst over 3 steps",
        "registry add (and remove)",
        "read-back of n/6 rows, 0 turning failing",
        f"read-back of n/6 rows, {quiet} turning failing",
    ]
    for cells in rows[:8]:
        before, after = float(cells[6]), float(cells[7])
        assert before > 0 and after > 0
    assert cases[8].startswith("idle wake-up") and cases[9].startswith("floor")


def test_chaos_loop_kills_the_daemon_and_counts_what_pagerduty_received() -> None:
    # Exit 0 is the script's own verdict: nothing lost, left open or reordered.
    stdout = run_script("bench/chaos.py", "--kills", "2", "--seconds-between", "1", "3")
    total = next(line for line in stdout.splitlines() if line.startswith("| total "))
    assert int(total.split("|")[2]) >= 1  # outages expected to page: the loop drove one at least
    assert "lost 0, duplicated " in stdout and ", zombie 0, reordered 0," in stdout
    assert "2 SIGKILLs" in stdout


def test_history_bench_prints_the_store_and_api_figures_beside_their_floors() -> None:
    stdout = run_script(
        "bench/history.py",
        "--store-integrations", "3",
        "--days", "2",
        "--api-integrations", "20",
        "--requests", "20",
        "--no-page",
    )  # fmt: skip
    assert "bytes per bucket row: " in stdout and "(floor, the values alone: " in stdout
    assert "bytes per integration per day of history: " in stdout
    assert "without (floor)" in stdout
    for line in ("floor: GET /api/v1/me", "history window=90d", "incident history (admin)"):
        assert line in stdout


def test_callbacks_bench_posts_both_providers_and_counts_every_message() -> None:
    stdout = run_script(
        "bench/callbacks.py",
        "--callbacks", "200",
        "--concurrency", "5",
        "--bridges", "5",
        "--integrations", "100",
    )  # fmt: skip
    assert '{"200": 200}' in stdout and '{"200": 2}' in stdout
    assert "200 in +" in stdout
    assert "Series added to /metrics" in stdout


def test_registry_bench_prints_every_figure() -> None:
    stdout = run_script(
        "bench/registry.py", "--integrations", "20", "--tenants", "2", "--samples", "5"
    )  # fmt: skip
    for figure in (
        "registered 20 integrations",
        "PUT to first probe",
        "list page of 100",
        "one workspace's page",
        "status=failing page",
        "start-up with",
    ):
        assert figure in stdout


def test_registry_bench_without_probes_prints_the_registrys_own_figures() -> None:
    stdout = run_script(
        "bench/registry.py", "--integrations", "20", "--tenants", "2", "--samples", "5",
        "--no-probe",
    )  # fmt: skip
    assert "(none probed)" in stdout and "PUT to first probe" not in stdout
    for figure in ("list page of 100", "status=failing page", "start-up with 20 registered"):
        assert figure in stdout

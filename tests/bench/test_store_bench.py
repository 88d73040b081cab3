"""bench/store.py still runs end to end on a tiny size. Figures are printed, never asserted."""

from __future__ import annotations

from tests.bench.test_bench_scripts import run_script


def test_store_bench_prints_one_row_per_concurrency() -> None:
    stdout = run_script(
        "bench/store.py", "--runs", "50", "--integrations", "10", "--concurrency", "1", "5"
    )
    rows = [line.split("|")[2].strip() for line in stdout.splitlines() if line.startswith("| 50")]
    assert rows == ["1", "5"]

"""The README's metrics and API tables are the ones generated from the code."""

from __future__ import annotations

from healthd.reference import render_into
from tests.conftest import REPO


def test_readme_reference_tables_match_the_code() -> None:
    readme = (REPO / "README.md").read_text()
    assert render_into(readme) == readme, "run: python -m healthd.reference README.md"


def test_every_metric_named_in_the_design_is_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    for name in [
        "healthd_probe_success",
        "healthd_probe_duration_seconds",
        "healthd_integration_status",
        "healthd_integration_last_success_timestamp_seconds",
        "healthd_bridge_unreachable_seconds",
        "healthd_findings_total",
        "healthd_alert_events_total",
        "healthd_alert_outbox_pending",
        "healthd_build_info",
    ]:
        assert f"| `{name}` |" in readme

"""The Grafana dashboard and its provisioning files.

Every query must select only metrics healthd exports (`metric_names.py`) and must parse as
PromQL (promtool). The end-to-end test later checks the same expressions against a real
Prometheus that scraped healthd.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.metric_names import CLUSTER_METRICS, METRICS, series_names
from tests.deploy.paths import DEPLOY
from tests.deploy.promql import check_expressions, metric_names, without_grafana_variables
from tests.deploy.tools import run_tool, system_tool

GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "healthd.json"
_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


def _dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def _panels() -> list[dict[str, Any]]:
    """Every panel that queries: rows only group the others."""
    return [panel for panel in _dashboard()["panels"] if panel["type"] != "row"]


def _variables() -> dict[str, dict[str, Any]]:
    return {var["name"]: var for var in _dashboard()["templating"]["list"]}


def _expressions() -> list[str]:
    """Every PromQL expression the dashboard sends: panel targets and variable queries."""
    exprs = [target["expr"] for panel in _panels() for target in panel["targets"]]
    for var in _variables().values():
        if var["type"] == "query":
            match = _LABEL_VALUES.match(var["query"]["query"])
            assert match, f"variable {var['name']}: not a label_values() query"
            exprs.append(match["selector"])
    return exprs


def test_dashboard_schema_is_recent_enough_for_state_timeline_panels() -> None:
    dashboard = _dashboard()
    assert dashboard["schemaVersion"] >= 38
    assert dashboard["uid"]


def test_every_panel_and_target_has_the_datasource_variable() -> None:
    for panel in _panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]
            assert target["expr"].strip(), panel["title"]


def test_panel_ids_are_unique_and_panels_do_not_overlap() -> None:
    panels = _dashboard()["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        area = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area


def test_every_expression_selects_only_metrics_healthd_exports() -> None:
    known = series_names()
    for expr in _expressions():
        unknown = metric_names(expr) - known
        assert not unknown, (
            f"{expr!r} selects {sorted(unknown)}, not in tests/deploy/metric_names.py"
        )


def test_every_expression_parses_as_promql() -> None:
    run = check_expressions(without_grafana_variables(expr) for expr in _expressions())
    assert run.returncode == 0, run.explain()


@pytest.mark.parametrize(
    ("subject", "metric"),
    [
        ("provider status overview", "healthd_integrations"),
        ("integration status detail", "healthd_integration_status"),
        ("probes overdue", "healthd_probe_overdue_seconds"),
        ("integrations left without detail", "healthd_integration_detail_omitted"),
        ("probe latency by provider", "healthd_probe_duration_seconds_bucket"),
        ("findings by code and category", "healthd_findings_total"),
        ("bridge unreachable time", "healthd_bridge_unreachable_seconds"),
        ("alert events", "healthd_alert_events_total"),
        ("alert outbox", "healthd_alert_outbox_pending"),
    ],
)
def test_dashboard_shows(subject: str, metric: str) -> None:
    used = set().union(*(metric_names(expr) for expr in _expressions()))
    assert metric in used, f"no panel shows {subject} ({metric})"


def test_integration_status_is_a_state_timeline_with_a_name_for_every_status() -> None:
    timelines = [panel for panel in _panels() if panel["type"] == "state-timeline"]
    assert len(timelines) == 1
    mappings = timelines[0]["fieldConfig"]["defaults"]["mappings"][0]["options"]
    assert {m["text"] for m in mappings.values()} == {
        "ok",
        "degraded",
        "failing",
        "unreachable",
        "unknown",
    }


def test_status_timeline_query_yields_the_code_its_value_mapping_names(tmp_path: Path) -> None:
    """Evaluated by promtool on one integration in each status, with the variables at All."""
    (timeline,) = [panel for panel in _panels() if panel["type"] == "state-timeline"]
    (target,) = timeline["targets"]
    mappings = timeline["fieldConfig"]["defaults"]["mappings"][0]["options"]
    code_of = {mapping["text"]: int(value) for value, mapping in mappings.items()}
    series = [
        {
            "series": f'healthd_integration_status{{integration="i-{current}", provider="twilio",'
            f' tenant="acme", status="{status}"}}',
            "values": f"{int(status == current)}x5",
        }
        for current in code_of
        for status in code_of
    ]
    expected = [
        {"labels": f'{{integration="i-{status}"}}', "value": code}
        for status, code in code_of.items()
    ]
    run = _evaluate(tmp_path, target["expr"], series, expected)
    assert run.returncode == 0, run.explain()


def _evaluate(
    tmp_path: Path, expr: str, series: list[dict[str, str]], expected: list[dict[str, Any]]
) -> Any:
    """promtool's run of `expr` (the variables at All) over `series`, expecting `expected`
    at 2m."""
    test = {
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": without_grafana_variables(expr),
                        "eval_time": "2m",
                        "exp_samples": expected,
                    }
                ],
            }
        ],
    }
    path = tmp_path / "panel.test.yml"
    path.write_text(yaml.safe_dump(test))
    return run_tool([system_tool("promtool"), "test", "rules", str(path)])


REPLICAS = ("10.0.0.1:9477", "10.0.0.2:9477", "10.0.0.3:9477")


def _panel_expr(title: str) -> str:
    (panel,) = [p for p in _panels() if p["title"] == title]
    expr: str = panel["targets"][0]["expr"]
    return expr


def test_three_replicas_each_counting_the_whole_fleet_show_it_counted_once(
    tmp_path: Path,
) -> None:
    """Each replica exports `healthd_integrations` for the whole fleet (it reads the others'
    runs back): the overview counts each integration once, not once per replica."""
    series = [
        {
            "series": f'healthd_integrations{{provider="twilio", status="{status}",'
            f' instance="{instance}"}}',
            "values": f"{count}x5",
        }
        for instance in REPLICAS
        for status, count in (("ok", 90), ("failing", 10))
    ]
    expected = [
        {"labels": '{provider="twilio", status="ok"}', "value": 90},
        {"labels": '{provider="twilio", status="failing"}', "value": 10},
    ]

    run = _evaluate(tmp_path, _panel_expr("Integrations by provider and status"), series, expected)

    assert run.returncode == 0, run.explain()


def test_three_replicas_show_one_status_code_per_integration_in_the_timeline(
    tmp_path: Path,
) -> None:
    series = [
        {
            "series": f'healthd_integration_status{{integration="i-1", provider="twilio",'
            f' tenant="acme", status="{status}", instance="{instance}"}}',
            "values": f"{int(status == 'failing')}x5",
        }
        for instance in REPLICAS
        for status in ("ok", "degraded", "failing", "unreachable", "unknown")
    ]
    expected = [{"labels": '{integration="i-1"}', "value": 3}]  # failing

    run = _evaluate(tmp_path, _panel_expr("Integration status timeline"), series, expected)

    assert run.returncode == 0, run.explain()


def test_per_integration_panels_take_one_replica_s_series_each() -> None:
    """Every replica exports the detail of the integrations it knows, its own and the ones
    it reads back: a panel that draws them per integration drops the replica's labels."""
    for title in (
        "Last probe duration by integration",
        "Seconds since last successful probe",
        "Probes overdue by provider",
        "Bridge unreachable time",
    ):
        assert "max without (instance, pod) (" in _panel_expr(title), title


def test_tenant_and_provider_variables_filter_the_per_integration_panels() -> None:
    variables = _variables()
    assert {"datasource", "tenant", "provider"} <= set(variables)
    status_panels = [
        panel
        for panel in _panels()
        if any("healthd_integration_status" in t["expr"] for t in panel["targets"])
    ]
    assert status_panels
    for panel in status_panels:
        for target in panel["targets"]:
            assert 'tenant=~"$tenant"' in target["expr"], panel["title"]
            assert 'provider=~"$provider"' in target["expr"], panel["title"]


def test_provisioned_datasource_is_the_dashboard_default() -> None:
    provisioning = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    (source,) = provisioning["datasources"]
    assert source["type"] == "prometheus"
    assert _variables()["datasource"]["current"]["value"] == source["uid"]


def test_dashboard_provider_reads_a_folder_of_files() -> None:
    provisioning = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "healthd.yml").read_text()
    )
    (provider,) = provisioning["providers"]
    assert provisioning["apiVersion"] == 1
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/")


def test_metric_list_matches_the_daemons_metric_definitions() -> None:
    """Until metric_names.py reads the daemon's definitions itself, they must not drift."""
    from healthd.cluster.metrics import HELP as CLUSTER_HELP
    from healthd.metrics import DELIVERY_HELP, HELP

    assert set(METRICS) == set(HELP) | set(DELIVERY_HELP)
    assert set(CLUSTER_METRICS) == set(CLUSTER_HELP)

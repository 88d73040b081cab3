"""The lint helpers that read PromQL: they decide what the dashboard test may accept."""

from __future__ import annotations

import pytest

from tests.deploy.promql import check_expressions, metric_names, without_grafana_variables


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("healthd_probe_success", {"healthd_probe_success"}),
        ('up{job="healthd"} == 0 or absent(up{job="healthd"})', {"up"}),
        (
            "histogram_quantile(0.95, sum by (provider, le) "
            '(rate(healthd_probe_duration_seconds_bucket{provider=~"a|b"}[5m])))',
            {"healthd_probe_duration_seconds_bucket"},
        ),
        (
            'a_total / ignoring(status) group_left(tenant) b{x="{not_a_metric}"} offset 1h',
            {"a_total", "b"},
        ),
        ("time() - last_seen > 1e3 * 2", {"last_seen"}),
        ("topk(5, sum without (code) (rate(x[1h:5m])))", {"x"}),
        (
            'count(x) > bool 3 unless on(instance) label_replace(y, "a", "$1", "b", "(.*)")',
            {"x", "y"},
        ),
    ],
)
def test_metric_names_are_the_selected_series_only(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_grafana_variables_become_a_parseable_expression() -> None:
    expr = 'rate(m{tenant=~"$tenant", provider=~"${provider}"}[$__rate_interval])'
    assert without_grafana_variables(expr) == 'rate(m{tenant=~".*", provider=~".*"}[5m])'


def test_promtool_accepts_valid_expressions() -> None:
    run = check_expressions(["sum by (a) (rate(m_total[5m]))", "histogram_quantile(0.9, b)"])
    assert run.returncode == 0, run.explain()


def test_promtool_rejects_an_expression_that_does_not_parse() -> None:
    run = check_expressions(["sum by (a) (rate(m_total[5m])"])
    assert run.returncode != 0, run.explain()

"""The metrics healthd exports: the one list the deploy tests check dashboards and rules against.

For now this mirrors the metrics contract the daemon is being built to (DESIGN.md, "Metrics").
It is kept in this one place so that it can be replaced by the daemon's own metric definitions
(`healthd/metrics.py`) without touching the tests that use it.
"""

from __future__ import annotations

from typing import Literal

MetricType = Literal["gauge", "counter", "histogram"]

#: Metric family name -> type. Counters are named with their `_total` suffix, as exported.
METRICS: dict[str, MetricType] = {
    "healthd_probe_success": "gauge",
    "healthd_probe_duration_seconds": "histogram",
    "healthd_probe_last_duration_seconds": "gauge",
    "healthd_integration_status": "gauge",
    "healthd_integration_last_success_timestamp_seconds": "gauge",
    "healthd_integration_last_check_timestamp_seconds": "gauge",
    "healthd_bridge_unreachable_seconds": "gauge",
    "healthd_integrations": "gauge",
    "healthd_probe_overdue_seconds": "gauge",
    "healthd_integration_detail_omitted": "gauge",
    "healthd_findings_total": "counter",
    "healthd_probes_total": "counter",
    "healthd_probe_errors_total": "counter",
    "healthd_store_errors_total": "counter",
    "healthd_store_healthy": "gauge",
    "healthd_alert_events_total": "counter",
    "healthd_alert_outbox_pending": "gauge",
    "healthd_alert_outbox_oldest_pending_age_seconds": "gauge",
    "healthd_open_incidents": "gauge",
    "healthd_build_info": "gauge",
    "healthd_delivery_messages_total": "counter",
    "healthd_callbacks_total": "counter",
    "healthd_delivery_error_rate": "gauge",
}

#: Exported only by replicas on PostgreSQL (healthd.cluster.metrics).
CLUSTER_METRICS: dict[str, MetricType] = {
    "healthd_cluster_alert_lease_held": "gauge",
    "healthd_cluster_share_size": "gauge",
    "healthd_cluster_members": "gauge",
}

_HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


def series_names() -> frozenset[str]:
    """Every name a PromQL expression may select: histograms as their `_bucket/_sum/_count`."""
    names: set[str] = set()
    for name, kind in {**METRICS, **CLUSTER_METRICS}.items():
        if kind == "histogram":
            names.update(name + suffix for suffix in _HISTOGRAM_SERIES)
        else:
            names.add(name)
    return frozenset(names)

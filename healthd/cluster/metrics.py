"""Each replica's own health, beside what it probes: whether it holds the alert lease, how
many integrations it probes, and how many live replicas it sees.

Prometheus sums `healthd_cluster_alert_lease_held` across replicas to 1 in steady state
(0: no replica evaluates the rules; 2: never, the lease is one row), and
`healthd_cluster_share_size` to the fleet's size (deploy/prometheus rules: HealthdAlertLeaseUnheld
when the sum is 0).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge

from healthd.cluster.lease import AlertLease
from healthd.cluster.shares import Shares

HELP = {
    "healthd_cluster_alert_lease_held": (
        "1 while this replica holds the alert lease (it alone evaluates the alert rules)."
    ),
    "healthd_cluster_share_size": "Integrations this replica probes (its share of the fleet).",
    "healthd_cluster_members": (
        "Live replicas this replica sees on the database (heartbeats within the lease)."
    ),
}


def register(registry: CollectorRegistry, lease: AlertLease, shares: Shares) -> None:
    values: dict[str, Callable[[], float]] = {
        "healthd_cluster_alert_lease_held": lambda: float(lease.held),
        "healthd_cluster_share_size": lambda: float(shares.size),
        "healthd_cluster_members": lambda: float(len(shares.members)),
    }
    for name, value in values.items():
        Gauge(name, HELP[name], registry=registry).set_function(value)

"""Each replica's own health, beside what it probes: whether it holds the alert lease, how
many integrations it probes, and how many live replicas it sees.

Prometheus sums `healthd_cluster_alert_lease_held` across replicas to 1 in steady state
(0: no replica evaluates the rules; 2: never, the lease is one row), and
`healthd_cluster_share_size` to the fleet's size (deploy/prometheus rules).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from healthd.cluster.lease import AlertLease
from healthd.cluster.shares import Shares


def register(registry: CollectorRegistry, lease: AlertLease, shares: Shares) -> None:
    Gauge(
        "healthd_cluster_alert_lease_held",
        "1 while this replica holds the alert lease (it alone evaluates the alert rules).",
        registry=registry,
    ).set_function(lambda: float(lease.held))
    Gauge(
        "healthd_cluster_share_size",
        "Integrations this replica probes (its share of the fleet).",
        registry=registry,
    ).set_function(lambda: float(shares.size))
    Gauge(
        "healthd_cluster_members",
        "Live replicas this replica sees on the database (heartbeats within the lease).",
        registry=registry,
    ).set_function(lambda: float(len(shares.members)))

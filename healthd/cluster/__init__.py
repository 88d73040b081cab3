"""Several replicas on one PostgreSQL: who evaluates the alert rules, and who probes what.

- `lease`: the alert lease. One replica at a time evaluates the rules; every plan it
  writes is fenced by the lease's token in the same transaction (PostgresStore.fence), so
  a replica that was paused and lost the lease writes, and so sends, nothing.
- `shares`: which integrations this replica probes: rendezvous hashing over the live
  members (their heartbeats are the store's), so each integration has one prober and a
  dead replica's share moves to the survivors once its heartbeat is older than the
  member lease.
- `checks`: "check now" asked of any replica is run by the integration's owner (NOTIFY
  there and back), so replicas asked at once share one probe.

The rows (members, leases) and their SQL are the store's (`healthd.store.postgresql`):
this package decides, the store keeps.
"""

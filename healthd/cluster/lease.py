"""The alert lease: at most one replica evaluates the alert rules at a time.

The engine asks `hold()` before each evaluation. It takes the lease when it is free or
expired, or renews it (the database's clock decides, never this host's), and tells the
engine whether it holds it and whether it has just taken it: a replica that takes the
lease over reads the open incidents again first, as the previous holder left them.

Fencing: while held, the store's `fence` is the lease's name and token, so every plan
is written only if the token is still this replica's when its transaction runs
(`PostgresStore.apply_alerts`). A replica paused (SIGSTOP, a long GC, a VM migration) past
`seconds` wakes up with a plan built on an old view; its write raises `LeaseLost` and the
engine drops the plan (`lost()`), so it queues nothing, and what is not queued is never
sent. The next holder evaluates from the stored incidents, so nothing is lost either.

The lease time (`seconds`, default 15 s) bounds how long the alerts wait for a takeover
after the holder dies: a survivor takes the lease at its first evaluation after the expiry,
at most `seconds` plus one engine tick (5 s) later. A holder that stops cleanly releases it
(`release()`), and the next replica takes it at its next tick.
"""

from __future__ import annotations

import enum

import structlog

from healthd.errors import StoreError
from healthd.store.postgresql import PostgresStore

log = structlog.get_logger("healthd.cluster")

ALERT_LEASE = "alerts"
LEASE_SECONDS = 15.0


class Holding(enum.Enum):
    NOT_HELD = "not_held"
    HELD = "held"
    TAKEN = "taken"  # held from now on, not at the previous evaluation


class AlertLease:
    """See the module. `held` is what the last `hold()` found (the metric reads it): a
    replica whose last `hold()` could not reach the database does not hold it, for it
    evaluates nothing then. It kept reporting the lease held through a whole PostgreSQL
    outage, so `healthd_cluster_alert_lease_held` summed to 1 and HealthdAlertLeaseUnheld,
    the rule that tells of no replica paging, never fired for the outage."""

    def __init__(
        self, store: PostgresStore, *, seconds: float = LEASE_SECONDS, name: str = ALERT_LEASE
    ) -> None:
        self._store = store
        self.seconds = seconds
        self.name = name
        self._token: int | None = None
        self._unreachable = False  # the last `hold()` raised StoreError

    @property
    def held(self) -> bool:
        return self._token is not None and not self._unreachable

    async def hold(self) -> Holding:
        """Takes or renews the lease; a store that fails (StoreError) counts as not held.
        The token and the fence stay: once the database answers again within the lease,
        the renewal is no takeover, and a write meanwhile is still fenced by the token."""
        try:
            token = await self._store.acquire_lease(self.name, self.seconds)
        except StoreError:
            self._unreachable = True
            raise
        self._unreachable = False
        before, self._token = self._token, token
        self._store.fence = None if token is None else (self.name, token)
        if token is None:
            if before is not None:
                log.warning("alert_lease_lost", lease=self.name, token=before)
            return Holding.NOT_HELD
        if before == token:
            return Holding.HELD
        log.info("alert_lease_taken", lease=self.name, token=token)
        return Holding.TAKEN

    def lost(self) -> None:
        """A fenced write was refused: forget the token, so holding it again is a takeover."""
        log.warning("alert_lease_lost", lease=self.name, token=self._token)
        self._forget()

    async def release(self) -> None:
        """Ends the lease at once (a clean stop), so the next replica need not wait it out."""
        if self._token is not None:
            await self._store.release_lease(self.name, self._token)
            self._forget()

    def _forget(self) -> None:
        self._token = None
        self._store.fence = None

"""Which integrations this replica probes: rendezvous hashing over the live members.

Each integration goes to the live member with the highest `weight(member, integration)`
(a keyed hash): every replica computes the same owner from the same member list, with no
coordination beyond the members' heartbeats. When a member dies only its own
integrations move, each to whichever survivor weighs most for it, so the survivors split
the dead one's share evenly and keep their own; when one joins, it takes about 1/N from
each.

`Shares.refresh()` reads the live members from the store (every `member_lease / 3`
seconds, `run`). A dead or hung replica's heartbeat is older than the member lease after
at most `member_lease` seconds, and the next refresh of each survivor moves its share:
its integrations are probed again within one interval plus `member_lease * 4/3`. The
integrations that became this replica's are handed to `load` at once, which reads their
state from the database before their first probe here (the ten-minute timer goes on from
the stored `unreachable_since`); every third refresh (once per member lease) the others'
integrations are handed to `load_changed`, so the alert lease holder and the status API
see the whole fleet as the database has it, at most `member_lease` old. That read was the
cluster's largest cost (every state and result: about 2.3 s of CPU at 100,000
integrations, bench/RESULTS.md "Issue 13"), hence once per lease and not per refresh, and
now only the rows written since the previous one (`PostgresStore.load_runs`, `changed`).

While the database cannot be read, the last member list is kept: the replicas go on
probing the shares they had, and `problem` says why (the daemon's `/readyz` is not ready
meanwhile, even on a replica whose share is empty and so writes nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable, Collection, Sequence

import structlog

from healthd.errors import StoreError
from healthd.store.postgresql import PostgresStore

log = structlog.get_logger("healthd.cluster")


def weight(member: int, integration_id: str) -> int:
    digest = hashlib.blake2b(f"{member}/{integration_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(integration_id: str, members: Sequence[int]) -> int:
    """The member that probes `integration_id` (members must not be empty)."""
    return max(members, key=lambda member: weight(member, integration_id))


class Shares:
    """This replica's share of `integration_ids`; see the module."""

    def __init__(
        self,
        store: PostgresStore,
        integration_ids: Callable[[], Collection[str]],
        load: Callable[[list[str]], Awaitable[None]],
        load_changed: Callable[[list[str]], Awaitable[None]] | None = None,
    ) -> None:
        """`integration_ids` gives the fleet as it is now (the registry adds and removes
        integrations at run time). `load` reads integrations' runs from the database;
        `load_changed` (`load` unless given) those written since its previous call: the
        others' runs, every member lease."""
        self._store = store
        self._fleet = integration_ids
        self._load = load
        self._load_changed = load_changed or load
        self.members: list[int] = []
        self._mine: frozenset[str] = frozenset()
        self._weighed: frozenset[str] = frozenset()  # the fleet as of the last change
        self.problem: str | None = None  # why the last refresh failed; None once one works

    @property
    def me(self) -> int:
        assert self._store.member_id is not None, "the store is not open"
        return self._store.member_id

    @property
    def size(self) -> int:
        return len(self._mine)

    def mine(self, integration_ids: Sequence[str]) -> list[str]:
        """Those of `integration_ids` this replica probes."""
        return [i for i in integration_ids if self._owns(i)]

    def others(self) -> list[str]:
        """The fleet's integrations other replicas probe (read back from the database)."""
        return [i for i in self._fleet() if not self._owns(i)]

    def _owns(self, integration_id: str) -> bool:
        """One added since the last refresh is weighed at once, as every replica weighs it."""
        if integration_id in self._mine:
            return True
        return (
            bool(self.members)
            and integration_id not in self._weighed
            and owner(integration_id, self.members) == self.me
        )

    async def refresh(self) -> None:
        members = await self._store.live_members()
        if self.me not in members:
            members = sorted({*members, self.me})  # alive as long as it asks
        if members == self.members:
            return
        self.members = members
        ids = sorted(self._fleet())
        self._weighed = frozenset(ids)
        mine = frozenset(i for i in ids if owner(i, members) == self.me)
        gained = sorted(mine - self._mine)
        self._mine = mine
        log.info("shares_changed", members=members, share=len(mine), gained=len(gained))
        if gained:
            await self._load(gained)

    async def read_back_others(self) -> None:
        """The others' runs written since the previous read-back (`load_changed`)."""
        await self._load_changed(self.others())

    async def run(self, stop: asyncio.Event) -> None:
        refreshes = 0
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._store.member_lease / 3):
                    await stop.wait()
            refreshes += 1
            try:
                await self.refresh()
                if refreshes % 3 == 0:
                    await self.read_back_others()
            except StoreError as exc:
                if self.problem is None:
                    log.warning("shares_refresh_failed", error=str(exc))
                self.problem = str(exc)
            else:
                self.problem = None

"""The registry's index by tenant (`fleet.Entries`) gives what a scan of every entry gives.

A tenant's PUT, GET and set ETag read the tenant's own entries only. For random sequences
of single PUTs (some moving an integration to another tenant), tenant set PUTs (some
refused: an id of another tenant), deletes and changes another replica made that this one
syncs, each tenant's entries and ETag must be those of a scan of the whole registry.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from healthd import config
from healthd.clock import FakeClock
from healthd.errors import HealthdError
from healthd.fleet import Fleet, _set_etag
from healthd.secrets import Secret
from healthd.sim.fixtures import integration_entry
from healthd.store import MemoryStore
from healthd.vault import KeyRing, new_key
from tests.alerts.test_rules import T0

TENANTS = ("acme", "globex", "initech")
IDS = tuple(f"crm-{n}" for n in range(6))
KEYS = KeyRing([Secret(new_key())])
CONFIG = config.loads("integrations: []\nstore: 'sqlite:///unused.db'\n")

puts = st.tuples(st.just("put"), st.integers(0, len(IDS) - 1), st.integers(0, len(TENANTS) - 1))
sets = st.tuples(
    st.just("set"), st.integers(0, len(TENANTS) - 1), st.integers(0, 2 ** len(IDS) - 1)
)
deletes = st.tuples(st.just("delete"), st.integers(0, len(IDS) - 1), st.just(0))
elsewhere = st.tuples(
    st.just("elsewhere"), st.integers(0, len(IDS) - 1), st.integers(-1, len(TENANTS) - 1)
)
scripts = st.lists(st.one_of(puts, sets, deletes, elsewhere), max_size=30)


def body(tenant: str, name: str = "") -> dict[str, Any]:
    entry = integration_entry(
        "imessage_bridge", "http://127.0.0.1:9", "b", id="-", tenant=tenant, name=name or tenant
    )
    del entry["id"]
    return entry


async def play(script: list[tuple[str, int, int]]) -> None:
    """Plays `script` on one replica's registry (and another's on the same store),
    checking the first after each step."""
    store = MemoryStore()
    clock = FakeClock(T0)
    here, there = (Fleet(config=CONFIG, store=store, clock=clock, keys=KEYS) for _ in "ab")
    for n, (action, a, b) in enumerate(script):
        try:
            if action == "put":
                await here.put(IDS[a], body(TENANTS[b], f"n{n}"))
            elif action == "set":
                chosen = [i for bit, i in enumerate(IDS) if b >> bit & 1]
                items = [body(TENANTS[a]) | {"id": iid} for iid in chosen]
                await here.replace_tenant(TENANTS[a], items)
            elif action == "delete":
                await here.delete(IDS[a])
            else:  # another replica's change, then this one syncs
                await there.sync()
                if b < 0:
                    await there.delete(IDS[a])
                else:
                    await there.put(IDS[a], body(TENANTS[b], f"e{n}"))
                await here.sync()
        except HealthdError:
            pass  # refused (another tenant's id, not registered): it must change nothing
        check(here)


def check(fleet: Fleet) -> None:
    for tenant in TENANTS:
        scanned = [e for e in fleet.entries.values() if e.record.tenant == tenant]
        indexed = fleet.tenant_entries(tenant)
        assert sorted(indexed, key=lambda e: e.record.id) == sorted(
            scanned, key=lambda e: e.record.id
        )
        assert fleet.tenant_etag(tenant) == _set_etag(scanned)


@settings(max_examples=60, deadline=None)
@given(scripts)
# An integration moved to another tenant by a single PUT, then that tenant's set without it.
@example([("put", 0, 0), ("put", 0, 1), ("set", 1, 0), ("set", 0, 1)])
# Another replica moves and deletes what this one registered.
@example([("set", 0, 3), ("elsewhere", 0, 2), ("elsewhere", 1, -1)])
def test_each_tenants_entries_and_etag_are_those_of_a_scan_of_the_registry(
    script: list[tuple[str, int, int]],
) -> None:
    asyncio.run(play(script))

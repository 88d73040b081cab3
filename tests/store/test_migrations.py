"""Upgrading a SQLite file written by an older healthd: nothing it held is lost."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from healthd.model import Incident, IncidentQuery, Status
from healthd.store import SQLiteStore
from healthd.store._rows import meta_text
from healthd.store._sqlite_schema import MIGRATIONS, PUT_META, SCHEMA_VERSION

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
STAMP = "2026-03-01T12:00:00.000000+00:00"
LATER = "2026-03-01T12:05:00.000000+00:00"


def _version_1_file(path: Path) -> None:
    """A file as healthd with schema version 1 left it: one incident per key, resolved
    and open ones, and one integration's state."""
    conn = sqlite3.connect(path)
    try:
        for statement in MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute(PUT_META, ("schema_version", meta_text(1)))
        conn.executemany(
            "INSERT INTO incidents VALUES (?, ?, ?, ?, ?, ?)",
            [
                ("healthd/bridge_unreachable/b", "bridge_unreachable", "down", STAMP, LATER, "{}"),
                ("healthd/tenant/t", "tenant_failing", "failing", STAMP, None, "{}"),
            ],
        )
        conn.execute(
            "INSERT INTO integration_state VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ("b", "ok", STAMP, 0, 4, STAMP, STAMP, None, "ok", 4),
        )
        conn.commit()
    finally:
        conn.close()


@pytest.fixture
async def upgraded(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    path = tmp_path / "healthd.db"
    _version_1_file(path)
    store = SQLiteStore(path)
    await store.open()
    yield store
    await store.close()


async def test_a_version_1_file_is_upgraded_to_the_current_schema(
    upgraded: SQLiteStore,
) -> None:
    assert await upgraded.get_meta("schema_version") == SCHEMA_VERSION


async def test_the_upgrade_keeps_every_incident_and_state(upgraded: SQLiteStore) -> None:
    kept = await upgraded.incident_history(IncidentQuery())
    assert [(r.incident.dedup_key, r.incident.is_open) for r in kept] == [
        ("healthd/tenant/t", True),
        ("healthd/bridge_unreachable/b", False),
    ]
    state = (await upgraded.load_states())["b"]
    assert (state.status, state.consecutive_successes, state.disagreeing_runs) == (
        Status.OK,
        4,
        0,
    )


async def test_an_upgraded_incident_reopened_adds_an_occurrence(upgraded: SQLiteStore) -> None:
    again = Incident(
        dedup_key="healthd/bridge_unreachable/b",
        rule="bridge_unreachable",
        summary="down again",
        opened_at=T0 + timedelta(hours=1),
    )
    await upgraded.apply_alerts(opened=[again], resolved=[], events=[], now=again.opened_at)

    keys = [r.incident.dedup_key for r in await upgraded.incident_history(IncidentQuery())]
    assert keys.count("healthd/bridge_unreachable/b") == 2


async def test_the_upgrade_keeps_one_counted_final_status_of_a_message_counted_twice(
    tmp_path: Path,
) -> None:
    # Before `delivery_final_once` two replicas could both count a message; the upgrade
    # keeps the earliest of its counted final statuses and the unique index holds after.
    path = tmp_path / "ledger.db"
    conn = sqlite3.connect(path)
    try:
        for statements in MIGRATIONS[:-1]:
            for statement in statements:
                conn.execute(statement)
        conn.execute(PUT_META, ("schema_version", meta_text(len(MIGRATIONS) - 1)))
        conn.executemany(
            "INSERT INTO delivery_events VALUES (?, ?, ?, 'final', ?, ?, 'callback', ?, 1)",
            [
                ("tw", "SM1", "undelivered", "recipient", "30003", LATER),
                ("tw", "SM1", "delivered", None, None, STAMP),
                ("tw", "SM2", "delivered", None, None, STAMP),
            ],
        )
        conn.commit()
    finally:
        conn.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        kept = await store.counted_deliveries(T0 - timedelta(days=1))
    finally:
        await store.close()
    assert sorted((o.message_id, o.status) for o in kept) == [
        ("SM1", "delivered"),
        ("SM2", "delivered"),
    ]

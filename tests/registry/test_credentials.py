"""Registry credentials are write-only and sealed at rest.

A marker credential is planted through the registry (a create, a change, a tenant's set, and
bodies the API refuses) on a daemon that probes and pages; then every API answer, every
log line, `/metrics`, every outbox row and the database's files are searched for it, in
the forms an echo would spell it.
"""

from __future__ import annotations

import asyncio
import base64
import sqlite3
from pathlib import Path

import pytest
import yaml
from structlog.testing import capture_logs

from healthd import config as config_module
from healthd.fleet import rekey_store
from healthd.secrets import echoed_forms
from healthd.sim.app import SimulatorThread
from healthd.vault import key_id, new_key
from tests.api.conftest import Answer, call
from tests.conftest import running_daemon
from tests.registry.conftest import PLANTED, REGISTRY_KEY, body, registry_config, send

pytestmark = pytest.mark.usefixtures("registry_env")


def leaks(text: str) -> list[str]:
    return [form for form in echoed_forms(PLANTED) if form in text]


async def test_a_planted_credential_appears_in_no_answer_log_metric_outbox_row_or_file(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    db = tmp_path / "h.db"
    doc = registry_config(sim, db)
    doc["defaults"] = {**doc["defaults"], "interval": "1h", "failure_threshold": 1}
    planted = {"password": PLANTED}
    answers: list[Answer] = []
    with capture_logs() as logs:
        async with running_daemon(doc, schedule=True) as d:
            answers += [
                await send(
                    d.url,
                    "PUT",
                    "/api/v1/integrations/crm-1",
                    body(sim, "a1", page=True, credentials=planted),
                ),
                await send(
                    d.url,
                    "PUT",
                    "/api/v1/integrations/crm-1",
                    body(sim, "a1", page=True, name="n", credentials=planted),
                ),
                await send(
                    d.url,
                    "PUT",
                    "/api/v1/tenants/globex/integrations",
                    {
                        "integrations": [
                            body(sim, "g1", tenant="globex", credentials=planted) | {"id": "crm-g"}
                        ]
                    },
                ),
                await send(
                    d.url,
                    "PUT",
                    "/api/v1/integrations/bad-1",
                    body(sim, "a1", credentials={"password": PLANTED, "extra": PLANTED}),
                ),
                await send(
                    d.url,
                    "PUT",
                    "/api/v1/integrations/bad-2",
                    body(sim, "a1", credentials={"password": PLANTED * 1000}),
                ),
                await send(
                    d.url,
                    "PUT",
                    "/api/v1/integrations/bad-3",
                    body(sim, "a1", timeout="2h", credentials=planted),
                ),
            ]
            async with asyncio.timeout(10):
                while "crm-1" not in d.runner.results or "crm-g" not in d.runner.results:
                    await asyncio.sleep(0.02)
            await d.engine.evaluate()
            for path in (
                "/api/v1/integrations",
                "/api/v1/integrations/crm-1",
                "/api/v1/integrations/crm-1/registration",
                "/api/v1/tenants/acme/integrations",
                "/api/v1/tenants/globex/integrations",
                "/api/v1/incidents",
                "/metrics",
            ):
                answers.append(await call(d.url, "GET", path))
            answers.append(await call(d.url, "POST", "/api/v1/integrations/crm-1/check"))
            answers.append(await send(d.url, "DELETE", "/api/v1/integrations/crm-g"))

    assert [a.status for a in answers[:6]] == [201, 200, 200, 422, 422, 422]
    assert any(a.text.count("fingerprint") for a in answers)
    for answer in answers:
        assert leaks(answer.text) == [] and leaks(str(answer.headers)) == []
    assert leaks("\n".join(repr(line) for line in logs)) == []
    outbox = rows(db, "SELECT event, last_error FROM outbox")
    assert outbox, "the failing integration paged: its trigger is in the outbox"
    assert leaks(repr(outbox)) == []
    assert file_leaks(tmp_path) == []


def rows(db: Path, query: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(query))


def file_leaks(folder: Path) -> list[tuple[str, list[str]]]:
    """The database, its -wal and -shm, the lock: what of the marker each holds."""
    found = [(p.name, leaks(p.read_bytes().decode("latin-1"))) for p in folder.iterdir()]
    return [(name, forms) for name, forms in found if forms]


async def test_rekey_seals_everything_under_the_new_key_and_the_old_one_may_go(
    sim: SimulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "h.db"
    async with running_daemon(registry_config(sim, db)) as d:
        await send(d.url, "PUT", "/api/v1/integrations/crm-1", body(sim, "a1"))
        before = (await send(d.url, "GET", "/api/v1/integrations/crm-1/registration")).json
    newer = new_key()
    monkeypatch.setenv("HEALTHD_TEST_NEW_KEY", newer)
    rolled = registry_config(sim, db)
    rolled["registry"]["keys"] = ["env:HEALTHD_TEST_NEW_KEY", "env:HEALTHD_TEST_REGISTRY_KEY"]
    assert await rekey_store(config_module.loads(yaml.safe_dump(rolled))) == (1, 1)
    only_new = registry_config(sim, db)
    only_new["registry"]["keys"] = ["env:HEALTHD_TEST_NEW_KEY"]
    async with running_daemon(only_new) as d:
        after = (await send(d.url, "GET", "/api/v1/integrations/crm-1/registration")).json
        checked = await call(d.url, "POST", "/api/v1/integrations/crm-1/check")

    old_id = key_id(base64.b64decode(REGISTRY_KEY))
    ((spec,),) = rows(db, "SELECT spec FROM registry")
    assert f"v1:{old_id}:" not in str(spec)
    assert after["etag"] == before["etag"] and after["credentials"] == before["credentials"]
    assert checked.json["integrations"][0]["last_result_status"] == "ok"

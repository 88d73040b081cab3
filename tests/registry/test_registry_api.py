"""The registry API over real HTTP: create, replace, remove, a tenant's set, ETags, roles.

Each test runs the daemon in-process (scheduler off: nothing is probed unless asked) on an
SQLite file, so what the API says it stored is what a restart finds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from healthd import config as config_module
from healthd.errors import ConfigError
from healthd.sim.app import SimulatorThread
from tests.api.conftest import ACME_TOKEN, assert_problem, call
from tests.conftest import running_daemon
from tests.registry.conftest import REGISTRY_TOKEN, body, registry_config, send

pytestmark = pytest.mark.usefixtures("registry_env")


async def test_put_creates_an_integration_that_the_status_api_then_shows(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    async with running_daemon(registry_config(sim, tmp_path / "h.db")) as d:
        put = await send(d.url, "PUT", "/api/v1/integrations/crm-acme-1", body(sim, "a1"))
        shown = await call(d.url, "GET", "/api/v1/integrations/crm-acme-1", token=ACME_TOKEN)

    assert put.status == 201, put.text
    assert put.headers["Etag"] == put.json["etag"]
    assert put.json["credentials"] == {
        "password": {"set": True, "fingerprint": put.json["credentials"]["password"]["fingerprint"]}
    }
    assert shown.status == 200 and shown.json["tenant"] == "acme"


async def test_a_bad_body_names_the_key_path_as_the_config_file_does(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    bad = body(sim, "a1", options={"no_such_option": 1})
    file_doc = registry_config(sim, tmp_path / "f.db")
    file_doc["integrations"] = [bad | {"id": "x", "credentials": {"password": "env:HOME"}}]
    with pytest.raises(ConfigError) as in_file:
        config_module.loads(yaml.safe_dump(file_doc))

    async with running_daemon(registry_config(sim, tmp_path / "h.db")) as d:
        answer = await send(d.url, "PUT", "/api/v1/integrations/x", bad)

    detail = assert_problem(answer, 422)["detail"]
    assert detail == str(in_file.value).removeprefix("integrations[0].")
    assert detail.startswith("options.no_such_option: unknown key")


async def test_a_missing_credential_is_a_422_naming_it(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    async with running_daemon(registry_config(sim, tmp_path / "h.db")) as d:
        answer = await send(d.url, "PUT", "/api/v1/integrations/x", body(sim, "a1", credentials={}))

    assert assert_problem(answer, 422)["detail"].startswith("credentials.password: required")


async def test_if_match_guards_a_replace_and_if_none_match_a_create(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    path = "/api/v1/integrations/crm-acme-1"
    async with running_daemon(registry_config(sim, tmp_path / "h.db")) as d:
        first = await send(d.url, "PUT", path, body(sim, "a1"))
        again = await send(d.url, "PUT", path, body(sim, "a1"), headers={"If-None-Match": "*"})
        stale = await send(
            d.url, "PUT", path, body(sim, "a1", name="x"), headers={"If-Match": '"0000"'}
        )
        fresh = await send(
            d.url, "PUT", path, body(sim, "a1", name="x"), headers={"If-Match": first.json["etag"]}
        )

    assert_problem(again, 412)
    assert_problem(stale, 412)
    assert fresh.status == 200 and fresh.json["revision"] == 2
    assert fresh.headers["Etag"] != first.headers["Etag"]


async def test_a_config_file_integration_is_read_only_through_the_api(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    async with running_daemon(registry_config(sim, tmp_path / "h.db")) as d:
        put = await send(d.url, "PUT", "/api/v1/integrations/bridge-acme1", body(sim, "a1"))
        delete = await send(d.url, "DELETE", "/api/v1/integrations/bridge-acme1")

    assert "config file" in assert_problem(put, 409)["detail"]
    assert_problem(delete, 409)


async def test_delete_removes_it_from_the_status_api(sim: SimulatorThread, tmp_path: Path) -> None:
    async with running_daemon(registry_config(sim, tmp_path / "h.db")) as d:
        await send(d.url, "PUT", "/api/v1/integrations/crm-1", body(sim, "a1"))
        deleted = await send(d.url, "DELETE", "/api/v1/integrations/crm-1")
        gone = await call(d.url, "GET", "/api/v1/integrations/crm-1")
        again = await send(d.url, "DELETE", "/api/v1/integrations/crm-1")

    assert deleted.status == 204
    assert_problem(gone, 404)
    assert_problem(again, 404)


async def test_a_tenant_set_put_is_idempotent_and_removes_what_it_leaves_out(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    path = "/api/v1/tenants/acme/integrations"
    one = [body(sim, "a1") | {"id": "crm-1"}, body(sim, "a2") | {"id": "crm-2"}]
    async with running_daemon(registry_config(sim, tmp_path / "h.db")) as d:
        first = await send(d.url, "PUT", path, {"integrations": one})
        second = await send(d.url, "PUT", path, {"integrations": one})
        third = await send(d.url, "PUT", path, {"integrations": one[:1]})
        listed = await call(d.url, "GET", "/api/v1/integrations?tenant=acme")

    assert (first.json["created"], first.json["unchanged"]) == (["crm-1", "crm-2"], [])
    assert (second.json["created"], second.json["changed"], second.json["removed"]) == ([], [], [])
    assert second.json["unchanged"] == ["crm-1", "crm-2"]
    assert second.headers["Etag"] == first.headers["Etag"]
    assert third.json["removed"] == ["crm-2"]
    ids = {i["id"] for i in listed.json["integrations"]}
    assert "crm-1" in ids and "crm-2" not in ids


async def test_a_tenant_set_item_of_another_tenant_is_a_422(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    items = [body(sim, "a1", tenant="globex") | {"id": "crm-1"}]
    async with running_daemon(registry_config(sim, tmp_path / "h.db")) as d:
        answer = await send(
            d.url, "PUT", "/api/v1/tenants/acme/integrations", {"integrations": items}
        )

    assert assert_problem(answer, 422)["detail"].startswith("integrations[0].tenant")


async def test_a_registry_token_writes_the_registry_and_reads_nothing_else(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    async with running_daemon(registry_config(sim, tmp_path / "h.db")) as d:
        put = await send(
            d.url, "PUT", "/api/v1/integrations/crm-1", body(sim, "a1"), token=REGISTRY_TOKEN
        )
        reads = [
            await call(d.url, "GET", path, token=REGISTRY_TOKEN)
            for path in ("/api/v1/integrations", "/api/v1/integrations/crm-1", "/api/v1/incidents")
        ]

    assert put.status == 201
    for answer in reads:
        assert_problem(answer, 404)


async def test_a_tenant_token_cannot_write_the_registry(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    async with running_daemon(registry_config(sim, tmp_path / "h.db")) as d:
        answer = await send(
            d.url, "PUT", "/api/v1/integrations/crm-1", body(sim, "a1"), token=ACME_TOKEN
        )
        listed = await call(d.url, "GET", "/api/v1/integrations/crm-1")

    assert_problem(answer, 404)
    assert_problem(listed, 404)


async def test_registered_integrations_survive_a_restart(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    doc = registry_config(sim, tmp_path / "h.db")
    async with running_daemon(doc) as d:
        put = await send(d.url, "PUT", "/api/v1/integrations/crm-1", body(sim, "a1"))
    async with running_daemon(doc) as d:
        shown = await send(d.url, "GET", "/api/v1/integrations/crm-1/registration")
        checked = await call(d.url, "POST", "/api/v1/integrations/crm-1/check")

    assert shown.json["etag"] == put.json["etag"]
    # The password came back out of the store: the simulator's bridge accepts it.
    assert checked.json["integrations"][0]["last_result_status"] == "ok"

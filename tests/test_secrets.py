"""Planted secrets must not appear anywhere a person or a scraper can read.

The bridge password, the PagerDuty routing key and the API tokens are planted with
recognisable values; the daemon runs through healthy and broken scenarios, and every log
event, the /metrics page, every API answer, every probe result and the CLI's output are
scanned for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from healthd import config as config_module
from healthd import probing
from healthd.daemon import Daemon
from healthd.model import ProbeResult, Status
from healthd.registry import probes
from healthd.secrets import MASK, Redactor, _spelled_forms, echoed_forms
from healthd.sim.app import SimulatorThread
from healthd.sim.client import SimClient
from healthd.sim.fixtures import integration_entry
from probes._http import excerpt
from tests.conftest import REPO, base_config, bridge, running_daemon, write_config
from tests.email_support import make_ctx, serve

pytestmark = pytest.mark.e2e

PLANTED = {
    "HEALTHD_TEST_BRIDGE_PASSWORD": "PLANTED-bridge-password-7f3a9c",
    "HEALTHD_TEST_ROUTING_KEY": "R0PLANTEDROUTINGKEY7F3A9C0000000",
    "HEALTHD_TEST_ADMIN_TOKEN": "PLANTED-admin-token-7f3a9c-000",
    "HEALTHD_TEST_TOKEN_ACME": "PLANTED-acme-token-7f3a9c-0000",
    "HEALTHD_TEST_TOKEN_GLOBEX": "PLANTED-globex-token-7f3a9c-00",
}
SCENARIOS = ["ok", "offline", "auth_fail", "html", "server_error", "hanging"]


@pytest.fixture
def planted(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in PLANTED.items():
        monkeypatch.setenv(name, value)
    return PLANTED


def assert_clean(text: str, where: str) -> None:
    for value in PLANTED.values():
        assert value not in text, f"a planted secret appears in {where}"


async def test_planted_secrets_never_leave_the_daemon(
    sim: SimulatorThread, sim_client: SimClient, planted: dict[str, str]
) -> None:
    doc = base_config(sim, [bridge(sim, "dc1", timeout="1s")])
    admin = {"Authorization": f"Bearer {planted['HEALTHD_TEST_ADMIN_TOKEN']}"}
    seen: list[str] = []
    with capture_logs() as logs:
        async with running_daemon(doc) as d, aiohttp.ClientSession(headers=admin) as http:
            for scenario in SCENARIOS:
                sim_client.set_scenario(
                    "imessage_bridge",
                    scenario,
                    target="dc1",
                    password=planted["HEALTHD_TEST_BRIDGE_PASSWORD"],
                )
                result = await d.runner.run_once("bridge-dc1")
                seen.append(repr(result))
                await d.engine.evaluate()
                for method, path in [
                    ("GET", "/api/v1/integrations"),
                    ("GET", "/api/v1/integrations/bridge-dc1"),
                    ("POST", "/api/v1/integrations/bridge-dc1/check"),
                    ("GET", "/api/v1/incidents"),
                    ("GET", "/api/v1/errors/imessage_bridge/bridge.auth_invalid"),
                    ("GET", "/openapi.json"),
                    ("GET", "/metrics"),
                ]:
                    async with http.request(method, d.url + path) as answer:
                        seen.append(await answer.text())
            seen.append(repr(d.config))

    assert_clean("\n".join(seen), "an API answer, /metrics or a result")
    assert_clean(json.dumps(logs, default=repr), "the logs")
    assert MASK in repr(d.config.integrations[0].credentials)


def test_check_command_output_has_no_secret(tmp_path: Path, sim: SimulatorThread) -> None:
    sim.client().set_scenario(
        "imessage_bridge",
        "auth_fail",
        target="dc1",
        password=PLANTED["HEALTHD_TEST_BRIDGE_PASSWORD"],
    )
    path = write_config(tmp_path / "healthd.yaml", base_config(sim, [bridge(sim)]))
    proc = subprocess.run(
        [sys.executable, "-m", "healthd", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, **PLANTED},
    )
    assert proc.returncode == 1
    assert "bridge.auth_invalid" in proc.stdout
    assert_clean(proc.stdout + proc.stderr, "`healthd check` output")


PROVIDER_SECRETS = {
    "TWILIO_PLANTED_TOKEN": "PLANTEDtwilioAuthToken7f3a9c000",
    "SENDGRID_PLANTED_KEY": "SG.PLANTED-sendgrid-key-7f3a9c",
    "GOOGLE_PLANTED_SECRET": "PLANTED-google-client-secret-7f3a9c",
    "GOOGLE_PLANTED_REFRESH": "1//PLANTED-google-refresh-7f3a9c",
}
TWILIO_SID = "AC" + "c3" * 16
GOOGLE_CLIENT = "acme-planted.apps.example"
TARGETS = {
    "twilio": TWILIO_SID,
    "sendgrid": PROVIDER_SECRETS["SENDGRID_PLANTED_KEY"],
    "google": GOOGLE_CLIENT,
}
CREDENTIALS = {
    "twilio": {"account_sid": "env:TWILIO_PLANTED_SID", "auth_token": "env:TWILIO_PLANTED_TOKEN"},
    "sendgrid": {"api_key": "env:SENDGRID_PLANTED_KEY"},
    "google": {
        "client_id": "env:GOOGLE_PLANTED_CLIENT",
        "client_secret": "env:GOOGLE_PLANTED_SECRET",
        "refresh_token": "env:GOOGLE_PLANTED_REFRESH",
    },
}


def provider_integrations(sim: SimulatorThread) -> list[dict[str, object]]:
    return [
        integration_entry(
            provider,
            sim.http_url,
            target,
            id=f"acme-{provider}",
            tenant="acme",
            timeout="1s",
            credentials=CREDENTIALS[provider],
        )
        for provider, target in TARGETS.items()
    ]


async def test_provider_credentials_never_leave_the_daemon_in_any_scenario(
    sim: SimulatorThread,
    sim_client: SimClient,
    planted: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in PROVIDER_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TWILIO_PLANTED_SID", TWILIO_SID)
    monkeypatch.setenv("GOOGLE_PLANTED_CLIENT", GOOGLE_CLIENT)
    admin = {"Authorization": f"Bearer {planted['HEALTHD_TEST_ADMIN_TOKEN']}"}
    seen: list[str] = []
    with capture_logs() as logs:
        async with (
            running_daemon(base_config(sim, provider_integrations(sim))) as d,
            aiohttp.ClientSession(headers=admin) as http,
        ):
            for provider, target in TARGETS.items():
                scenarios = [
                    s
                    for s in sim_client.describe()["providers"][provider]["scenarios"]
                    if s != "slow"
                ]
                for scenario in scenarios:
                    params = (
                        {"auth_token": PROVIDER_SECRETS["TWILIO_PLANTED_TOKEN"]}
                        if provider == "twilio"
                        else {}
                    )
                    sim_client.set_scenario(provider, scenario, target=target, **params)
                    result = await d.runner.run_once(f"acme-{provider}")
                    seen.append(repr(result))
                    async with http.get(f"{d.url}/api/v1/integrations/acme-{provider}") as answer:
                        seen.append(await answer.text())
            await d.engine.evaluate()
            async with http.get(d.url + "/metrics") as answer:
                seen.append(await answer.text())

    text = "\n".join(seen) + json.dumps(logs, default=repr)
    for value in PROVIDER_SECRETS.values():
        assert value not in text
    assert len(seen) > 20


# --- secrets echoed back by a provider or a proxy ----------------------------------------
#
# A proxy in front of every provider answers each request with an error that echoes it: the
# request line (the bridge's `?password=`), the query decoded, the Authorization header, the
# form body and every value in them, in each provider's own error shape, so the echo lands
# in the message each probe quotes. None of it may reach a finding or anything built on one.

ECHO_ACCESS_TOKEN = "ya29.PLANTED-google-access-7f3a9c"
WEBHOOK_SECRET = ("HEALTHD_TEST_WEBHOOK_SECRET", "PLANTED-webhook-secret-7f3a9c")
ECHOED = [*PLANTED.values(), *PROVIDER_SECRETS.values(), ECHO_ACCESS_TOKEN, WEBHOOK_SECRET[1]]


class EchoingProxy:
    """Every path answers an error echoing the request; `/hook` records tenant webhooks;
    a path under `/html/` answers 200 with an HTML page echoing the request line."""

    def __init__(self) -> None:
        self.hooks: list[str] = []
        self.url = ""

    async def _echo(self, request: web.Request) -> web.StreamResponse:
        body = await request.text()
        values = [*request.query.values(), *(await request.post()).values()]
        echo = (
            f"{request.method} {request.raw_path} HTTP/1.1 "
            f"Authorization: {request.headers.get('Authorization', '-')} "
            f"query {request.query_string} body {body} values {' '.join(map(str, values))}"
        )
        path = request.path
        if path.startswith("/html/"):
            page = f"<html><head><title>{echo}</title></head><pre>{echo}</pre></html>"
            return web.Response(text=page, content_type="text/html", status=502)
        if path == "/token":
            return web.json_response({"error": echo[:40], "error_description": echo}, status=400)
        if path == "/token-ok":
            return web.json_response({"access_token": ECHO_ACCESS_TOKEN, "expires_in": 3600})
        if path.startswith("/gmail/"):
            error = {"code": 500, "message": echo, "errors": [{"reason": echo[:30]}]}
            return web.json_response({"error": error}, status=500)
        if path.startswith("/v3/"):
            return web.json_response({"errors": [{"message": echo, "field": None}]}, status=500)
        if path.startswith(("/2010-04-01/", "/v1/")):
            twilio = {"code": 20500, "message": echo, "more_info": "", "status": 500}
            return web.json_response(twilio, status=500)
        # The bridge's own error (BlueBubbles' envelope), not a proxy's gateway error.
        return web.json_response({"status": 500, "message": echo}, status=500)

    async def _hook(self, request: web.Request) -> web.Response:
        self.hooks.append(await request.text())
        return web.Response(status=204)

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[EchoingProxy]:
        routes = [web.post("/hook", self._hook), web.route("*", "/{tail:.*}", self._echo)]
        async with serve(routes=routes) as url:
            self.url = url
            yield self


def assert_nothing_echoed(text: str, where: str) -> None:
    for value in ECHOED:
        assert value not in text, f"an echoed secret appears in {where}"


@pytest.fixture
async def proxy(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[EchoingProxy]:
    for name, value in {**PLANTED, **PROVIDER_SECRETS}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TWILIO_PLANTED_SID", TWILIO_SID)
    monkeypatch.setenv("GOOGLE_PLANTED_CLIENT", GOOGLE_CLIENT)
    monkeypatch.setenv(*WEBHOOK_SECRET)
    async with EchoingProxy().serving() as p:
        yield p


def echoed_integrations(proxy: EchoingProxy) -> list[dict[str, Any]]:
    """The bridge (platform, pages) and the three providers (acme's, to its webhook)."""
    url = proxy.url
    bridge_entry = {
        "id": "bridge-dc1",
        "provider": "imessage_bridge",
        "tenant": "platform",
        "page": True,
        "base_url": f"{url}/bridge",
        "credentials": {"password": "env:HEALTHD_TEST_BRIDGE_PASSWORD"},
    }
    options: dict[str, dict[str, Any]] = {
        "twilio": {
            "messaging_base_url": url,
            "monitor_base_url": url,
            "statuspage_url": f"{url}/status",
        },
        "sendgrid": {"from_email": "sales@example.com", "statuspage_url": f"{url}/status"},
        "google": {"token_url": f"{url}/token"},
    }
    return [
        bridge_entry,
        *(
            {
                "id": f"acme-{provider}",
                "provider": provider,
                "tenant": "acme",
                "base_url": url,
                "credentials": CREDENTIALS[provider],
                "options": options[provider],
            }
            for provider in options
        ),
    ]


def echoed_config(sim: SimulatorThread, proxy: EchoingProxy) -> dict[str, Any]:
    hook = {"url": f"{proxy.url}/hook", "secret": f"env:{WEBHOOK_SECRET[0]}"}
    return base_config(sim, echoed_integrations(proxy), alerting={"webhooks": {"acme": hook}})


async def probe_through(proxy: EchoingProxy, entry: dict[str, Any]) -> ProbeResult:
    cfg = config_module.loads(yaml.safe_dump({"store": "memory:", "integrations": [entry]}))
    [integration] = cfg.integrations
    async with aiohttp.ClientSession() as session:
        return await probing.check(
            probes()[integration.provider](), integration, make_ctx(session, timeout=3)
        )


@pytest.mark.parametrize("provider", ["imessage_bridge", "twilio", "sendgrid", "google"])
async def test_a_provider_echoing_the_request_leaves_no_secret_in_the_findings(
    proxy: EchoingProxy, provider: str
) -> None:
    [entry] = [e for e in echoed_integrations(proxy) if e["provider"] == provider]
    result = await probe_through(proxy, entry)
    assert result.status is Status.FAILING
    assert_nothing_echoed(repr(result), f"the {provider} findings")
    assert MASK in repr(result)


async def test_a_proxy_page_echoing_the_query_leaves_no_secret_in_its_title(
    proxy: EchoingProxy,
) -> None:
    [entry] = [e for e in echoed_integrations(proxy) if e["provider"] == "imessage_bridge"]
    result = await probe_through(proxy, {**entry, "base_url": f"{proxy.url}/html/bridge"})
    [finding] = result.findings
    assert finding.code == "bridge.proxy_error"
    assert "password=" in finding.summary
    assert_nothing_echoed(finding.summary, "the title of a proxy's HTML page")


async def test_an_echoed_access_token_in_a_gmail_error_is_masked(proxy: EchoingProxy) -> None:
    [entry] = [e for e in echoed_integrations(proxy) if e["provider"] == "google"]
    entry = {**entry, "options": {"token_url": f"{proxy.url}/token-ok"}}
    result = await probe_through(proxy, entry)
    assert any(f.code == "google.server_error" for f in result.findings)
    assert_nothing_echoed(repr(result), "a Gmail error quoting its Authorization header")


async def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (value := predicate()):
            await asyncio.sleep(0.05)
        return value


@contextlib.asynccontextmanager
async def failing_daemon(sim: SimulatorThread, proxy: EchoingProxy) -> AsyncIterator[Daemon]:
    """A daemon whose every integration has failed often enough to alert, alerts sent."""
    async with running_daemon(echoed_config(sim, proxy)) as d:
        for _ in range(3):  # base_config's failure_threshold
            for integration in d.config.integrations:
                await d.runner.run_once(integration.id)
        await d.engine.evaluate()
        await d.outbox.run_once()
        yield d


async def test_echoed_secrets_never_reach_the_status_api(
    sim: SimulatorThread, proxy: EchoingProxy
) -> None:
    seen: list[str] = []
    async with failing_daemon(sim, proxy) as d:
        for token in (PLANTED["HEALTHD_TEST_ADMIN_TOKEN"], PLANTED["HEALTHD_TEST_TOKEN_ACME"]):
            headers = {"Authorization": f"Bearer {token}"}
            async with aiohttp.ClientSession(headers=headers) as http:
                for path in ["/api/v1/integrations", "/api/v1/incidents"] + [
                    f"/api/v1/integrations/{i.id}" for i in d.config.integrations
                ]:
                    async with http.get(d.url + path) as answer:
                        seen.append(f"{answer.status} {await answer.text()}")
    assert any("acme-sendgrid" in s and s.startswith("200") for s in seen)
    assert_nothing_echoed("\n".join(seen), "a status API answer")


async def test_echoed_secrets_never_reach_pagerduty(
    sim: SimulatorThread, sim_client: SimClient, proxy: EchoingProxy
) -> None:
    async with failing_daemon(sim, proxy):
        # The bridge's page, and one provider_outage page per provider: each tenant
        # integration is its provider's whole fleet here, failing with 5xx answers.
        triggers = await wait_for(
            lambda: (
                (
                    found := [
                        e["body"]
                        for e in sim_client.pagerduty_events()
                        if e["body"]["event_action"] == "trigger"
                    ]
                )
                and any("bridge-dc1" in t["payload"]["summary"] for t in found)
                and found
            )
        )
    for trigger in triggers:
        payload = trigger["payload"]
        assert_nothing_echoed(payload["summary"], "the PagerDuty summary")
        assert_nothing_echoed(json.dumps(payload["custom_details"]), "the PagerDuty custom_details")


async def test_echoed_secrets_never_reach_a_tenant_webhook(
    sim: SimulatorThread, proxy: EchoingProxy
) -> None:
    async with failing_daemon(sim, proxy):
        hooks = await wait_for(lambda: len(proxy.hooks) >= 3 and proxy.hooks)
    assert {json.loads(h)["dedup_key"] for h in hooks} == {
        f"healthd/tenant/acme-{p}" for p in ("twilio", "sendgrid", "google")
    }
    assert_nothing_echoed("\n".join(hooks), "a tenant webhook body")


async def test_echoed_secrets_never_reach_healthd_check_output(
    tmp_path: Path, sim: SimulatorThread, proxy: EchoingProxy
) -> None:
    path = write_config(tmp_path / "healthd.yaml", echoed_config(sim, proxy))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "healthd",
        "check",
        "--config",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode == 1
    assert "bridge.bad_response" in out.decode()
    assert_nothing_echoed(out.decode() + err.decode(), "`healthd check` output")


def test_a_secret_cut_short_by_an_excerpt_is_still_masked() -> None:
    secret = PLANTED["HEALTHD_TEST_BRIDGE_PASSWORD"]
    text = f"HTTP 502 ({excerpt(f'proxy error for {secret}', 30)})"
    assert secret[:12] in text  # the trim left the first characters
    assert Redactor([secret]).redact(text) == f"HTTP 502 (proxy error for {MASK}…)"


def test_a_word_that_merely_starts_like_a_secret_is_kept() -> None:
    redactor = Redactor(["password-of-the-bridge"])
    text = "The bridge rejected healthd's server password (401)"
    assert redactor.redact(text) == text


def test_a_secret_among_thirty_thousand_that_start_alike_is_masked() -> None:
    redactor = Redactor(f"PLANTED-fleet-secret-{n:06d}" for n in range(30_000))
    line = "probe failed: " + "x" * 2000 + " PLANTED-fleet-secret-012345"
    assert redactor.redact(line).endswith(f" {MASK}")


def test_a_credential_shape_is_masked_whatever_its_letter_case() -> None:
    """The shapes' gate reads the lower-cased text: mixed case still reaches each shape."""
    redactor = Redactor([])
    assert redactor.redact("GET /q?PassWord=hunter22&x=1") == f"GET /q?PassWord={MASK}&x=1"
    assert redactor.redact("AUTHORIZATION: Basic dXNlcjpwYXNz") == f"AUTHORIZATION: Basic {MASK}"


def test_a_text_without_any_credential_word_comes_back_as_it_was() -> None:
    text = "Restart the bridge's server, or check the proxy in front of it"
    assert Redactor(["an-unrelated-secret"]).redact(text) is text


@given(st.text() | st.text(alphabet="abcXYZ019_.~-/+=%&<>\"' \\é"))
def test_a_value_is_echoed_in_every_form_an_escaper_spells_it(value: str) -> None:
    """The shortcut for values no escaper changes finds the same forms as the escapers."""
    assert echoed_forms(value) == _spelled_forms(value)


# Pieces of text a run's findings are made of, some of them a secret or a shape's start.
_PIECES = st.lists(
    st.sampled_from(
        ["iMessage signed in", "password=", "hunter2-bridge", "aHVudGVy", "Bearer ", "…", " "]
    )
    | st.text(alphabet="abcXYZ019_.~-/+=%&:@ ", max_size=12),
    max_size=6,
).map("".join)


@given(st.lists(_PIECES, max_size=5))
def test_texts_a_redactor_leaves_alone_at_once_each_come_back_unchanged(texts: list[str]) -> None:
    """`leaves_alone` on the joined texts of a run may say True only if `redact` would
    change none of them: the probe run then skips redacting them one by one."""
    redactor = Redactor.for_credentials(["hunter2-bridge", "second-credential"])
    if redactor.leaves_alone("\0".join(texts)):
        assert [redactor.redact(t) for t in texts] == texts


def test_a_text_that_holds_a_secret_is_never_left_alone() -> None:
    redactor = Redactor.for_credentials(["hunter2-bridge"])
    assert redactor.leaves_alone("Bridge server 1.9 answered\0iMessage signed in")
    assert not redactor.leaves_alone("Bridge server 1.9 answered\0echo: hunter2-bridge")
    assert not redactor.leaves_alone("proxy said: password=anything")

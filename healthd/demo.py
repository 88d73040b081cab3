"""`healthd demo`: the daemon against the built-in provider simulator, with a scripted outage.

Nothing to configure and no credentials: the simulator plays every provider and
PagerDuty (over TLS with a throwaway CA), the store is a SQLite file in a temporary
folder, and the thresholds are shortened so the whole story fits in two minutes:
the bridge goes dark, healthd notices, pages after the (shortened) allowance, the bridge
comes back and the page is resolved. Then a burst of failed messages arrives by Twilio's
signed status callbacks (forged and replayed ones among them) and acme's webhook, played
by a small receiver in this process that checks healthd's signature, gets one
`messages_failing` event. The screen narrates each step; the daemon's own JSON log goes to
a file beside the store.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from healthd import config, log, loop
from healthd.alerts import webhook
from healthd.daemon import Daemon
from healthd.model import Status
from healthd.registry import probes
from healthd.sim.app import SimulatorThread
from healthd.sim.bridge import DEFAULT_PASSWORD as BRIDGE_PASSWORD
from healthd.sim.client import SimClient
from healthd.sim.fixtures import integration_entry
from healthd.sim.twilio import DEFAULT_TOKEN as TWILIO_TOKEN

BRIDGE_NAME = "dc1"
BRIDGE = f"bridge-{BRIDGE_NAME}"
PAGE_AFTER = 30.0  # seconds; ten minutes in production


def demo_config(
    sim: SimulatorThread,
    workdir: Path,
    listen: str,
    page_after: float = PAGE_AFTER,
    acme_hook: str | None = None,
) -> dict[str, Any]:
    """The demo's config: the shared bridge plus one integration per other registered probe."""
    integrations = [
        integration_entry(
            "imessage_bridge",
            sim.http_url,
            BRIDGE_NAME,
            id=BRIDGE,
            tenant="platform",
            name="iMessage bridge (datacenter 1)",
            credentials={"password": "env:HEALTHD_DEMO_BRIDGE_PASSWORD"},
        )
    ]
    integrations += [i for p, i in _tenant_integrations(sim) if p in probes()]
    return {
        "listen": listen,
        "store": f"sqlite:///{workdir / 'healthd.db'}",
        "defaults": {
            "interval": "3s",
            "timeout": "2s",
            "jitter": "0s",
            "failure_threshold": 2,
            "success_threshold": 2,
        },
        "alerting": {
            "pagerduty": {
                "routing_key": "env:HEALTHD_DEMO_ROUTING_KEY",
                "events_url": sim.https_url,
                "ca_bundle": str(sim.ca_path),
            },
            "rules": {"bridge_unreachable": {"page_after": f"{page_after:g}s"}},
            "outbox": {"backoff_initial": "1s", "backoff_max": "5s"},
            "webhooks": (
                {}
                if acme_hook is None
                else {"acme": {"url": acme_hook, "secret": "env:HEALTHD_DEMO_ACME_HOOK_SECRET"}}
            ),
        },
        "api": {
            "tokens": [
                {"name": "demo-admin", "role": "admin", "token": "env:HEALTHD_DEMO_ADMIN_TOKEN"},
                {"name": "acme-settings", "tenant": "acme", "token": "env:HEALTHD_DEMO_ACME_TOKEN"},
            ]
        },
        "integrations": integrations,
    }


ACME_TWILIO_SID = "AC" + "0a" * 16
GLOBEX_SENDGRID_KEY = "SG.demo-globex-key"
ACME_GOOGLE_CLIENT = "demo-acme.apps.example"


def _tenant_integrations(sim: SimulatorThread) -> list[tuple[str, dict[str, Any]]]:
    """Tenants' own accounts against the simulator; globex's SendGrid sender is unverified."""
    return [
        (
            "twilio",
            integration_entry(
                "twilio",
                sim.http_url,
                ACME_TWILIO_SID,
                id="acme-twilio",
                tenant="acme",
                name="Acme SMS (Twilio)",
                credentials={
                    "account_sid": "env:HEALTHD_DEMO_ACME_TWILIO_SID",
                    "auth_token": "env:HEALTHD_DEMO_TWILIO_TOKEN",
                },
            ),
        ),
        (
            "sendgrid",
            integration_entry(
                "sendgrid",
                sim.http_url,
                GLOBEX_SENDGRID_KEY,
                id="globex-sendgrid",
                tenant="globex",
                name="Globex email (SendGrid)",
                credentials={"api_key": "env:HEALTHD_DEMO_GLOBEX_SENDGRID_KEY"},
            ),
        ),
        (
            "google",
            integration_entry(
                "google",
                sim.http_url,
                ACME_GOOGLE_CLIENT,
                id="acme-google",
                tenant="acme",
                name="Acme email (Google)",
                credentials=lambda name: f"env:HEALTHD_DEMO_GOOGLE_{name.upper()}",
            ),
        ),
    ]


def run_demo(*, listen: str, duration: float | None, page_after: float = PAGE_AFTER) -> int:
    """Run until Ctrl-C, or, with `duration`, until the story ends or the time is up."""
    env = {
        "HEALTHD_DEMO_BRIDGE_PASSWORD": BRIDGE_PASSWORD,
        "HEALTHD_DEMO_ROUTING_KEY": "R0DEMO" + "0" * 26,
        "HEALTHD_DEMO_ADMIN_TOKEN": "admin-" + secrets.token_urlsafe(18),
        "HEALTHD_DEMO_ACME_TOKEN": "acme-" + secrets.token_urlsafe(18),
        "HEALTHD_DEMO_ACME_TWILIO_SID": ACME_TWILIO_SID,
        "HEALTHD_DEMO_TWILIO_TOKEN": TWILIO_TOKEN,
        "HEALTHD_DEMO_GLOBEX_SENDGRID_KEY": GLOBEX_SENDGRID_KEY,
        "HEALTHD_DEMO_GOOGLE_CLIENT_ID": ACME_GOOGLE_CLIENT,
        "HEALTHD_DEMO_GOOGLE_CLIENT_SECRET": "demo-google-client-secret",
        "HEALTHD_DEMO_GOOGLE_REFRESH_TOKEN": "1//demo-refresh-token",
        "HEALTHD_DEMO_ACME_HOOK_SECRET": "hook-" + secrets.token_urlsafe(18),
    }
    os.environ.update(env)
    hook = TenantHook(env["HEALTHD_DEMO_ACME_HOOK_SECRET"])
    with tempfile.TemporaryDirectory(prefix="healthd-demo-") as tmp, SimulatorThread() as sim:
        workdir = Path(tmp)
        sim.client().set_scenario("sendgrid", "sender_unverified", target=GLOBEX_SENDGRID_KEY)
        doc = demo_config(sim, workdir, listen, page_after, acme_hook=hook.url)
        (workdir / "healthd.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        cfg = config.loads(yaml.safe_dump(doc), source="demo")
        logfile = (workdir / "healthd.log").open("w")
        log.configure(list(env.values()), stream=logfile)
        try:
            loop.run(_main(cfg, sim, env, workdir, duration, page_after, hook))
        except KeyboardInterrupt:
            pass
        finally:
            logfile.close()
    say("demo stopped")
    return 0


async def _main(
    cfg: config.Config,
    sim: SimulatorThread,
    env: dict[str, str],
    workdir: Path,
    duration: float | None,
    page_after: float,
    hook: TenantHook,
) -> None:
    async with hook, Daemon(cfg) as daemon:
        _banner(daemon, sim, env, workdir, page_after)
        story = asyncio.create_task(
            _story(daemon, sim.client(), page_after, hook), name="demo-story"
        )
        try:
            if duration is None:
                await daemon.wait()
            else:
                await asyncio.wait({story}, timeout=duration)
            if story.done():
                story.result()  # a story that broke says why, rather than stopping quietly
        finally:
            story.cancel()


def _banner(
    daemon: Daemon, sim: SimulatorThread, env: dict[str, str], workdir: Path, page_after: float
) -> None:
    admin = env["HEALTHD_DEMO_ADMIN_TOKEN"]
    starts = _outage_starts(page_after)
    print(
        f"""
healthd demo: the daemon against the built-in provider simulator (no real provider is called)

  status page      {daemon.url}/
  metrics          {daemon.url}/metrics
  admin token      {admin}
  tenant token     {env["HEALTHD_DEMO_ACME_TOKEN"]}   (tenant "acme": sees only its own)
  simulator        {sim.http_url}/_sim   (PagerDuty events: {sim.http_url}/_sim/pagerduty/events)
  config and log   {workdir}/healthd.yaml, {workdir}/healthd.log

  try:  curl -s -H 'Authorization: Bearer {admin}' {daemon.url}/api/v1/integrations
        curl -s {daemon.url}/metrics | grep -E '^healthd_integration(s|_status)[{{]'

Globex's SendGrid sender is unverified: a tenant's own mistake, shown on its status and in
the metrics, never paged. Script: the iMessage bridge goes offline after {starts:g}s; healthd
pages on-call once it has been unreachable for {page_after:g}s (10 minutes in production),
then the bridge comes back and the page is resolved. Then acme's messages fail in a burst,
reported by Twilio's signed status callbacks: acme's webhook hears of it once. Ctrl-C stops
the demo.
""",
        flush=True,
    )


def _outage_starts(page_after: float) -> float:
    return max(5.0, page_after * 0.4)


async def _story(daemon: Daemon, sim: SimClient, page_after: float, hook: TenantHook) -> None:
    start = time.monotonic()
    await _until(lambda: daemon.runner.states[BRIDGE].status is Status.OK)
    say(f"{BRIDGE} is healthy: its server answers and iMessage is signed in", start)
    await asyncio.sleep(max(0.0, _outage_starts(page_after) - (time.monotonic() - start)))
    await asyncio.to_thread(sim.set_scenario, "imessage_bridge", "offline", BRIDGE_NAME)
    say("the bridge's Mac goes offline (simulated): connections are dropped", start)
    await _until(lambda: daemon.runner.states[BRIDGE].unreachable_since is not None)
    say("healthd sees the bridge unreachable; the page waits out the allowance", start)
    await _until(lambda: daemon.runner.states[BRIDGE].status is Status.UNREACHABLE)
    say("status is now 'unreachable' after consecutive failed probes (see /metrics)", start)
    trigger = await _pagerduty_event(sim, "trigger")
    say(f"PagerDuty received a trigger: {trigger['body']['payload']['summary']!r}", start)
    await asyncio.sleep(page_after / 2)
    await asyncio.to_thread(sim.set_scenario, "imessage_bridge", "ok", BRIDGE_NAME)
    say("the bridge is back online", start)
    await _pagerduty_event(sim, "resolve")
    say("PagerDuty received the resolve: the incident is closed, once", start)
    await _failure_burst(daemon, sim, hook, start)
    say("the story is over; the daemon keeps running until Ctrl-C", start)


BURST = 40  # acme's messages in the burst; a quarter of them filtered by carriers


async def _failure_burst(daemon: Daemon, sim: SimClient, hook: TenantHook, start: float) -> None:
    """Twilio reports acme's failed messages by status callback; acme's webhook hears once."""
    await asyncio.to_thread(
        sim.set_scenario,
        "twilio",
        "filtering_spike",
        ACME_TWILIO_SID,
        count=BURST,
        rate=0.25,
        messages="burst",  # new messages, not the delivered ones healthd has read already
    )
    url = f"{daemon.url}/callbacks/acme-twilio"
    say(f"acme sends {BURST} messages; carriers filter a quarter (simulated)", start)
    sent = await asyncio.to_thread(
        sim.send_twilio_callbacks, ACME_TWILIO_SID, url, replays=10, forged=3
    )
    answers = ", ".join(f"{n} x {status}" for status, n in sorted(sent["answers"].items()))
    say(f"Twilio's status callbacks, 10 replayed, 3 forged, reach {url}: {answers}", start)
    event = await hook.first("messages_failing")
    say(f"acme's webhook received: {event['summary']!r}", start)
    await asyncio.sleep(3.0)  # later flushes carry nothing new: the burst was one event
    say(f"acme's webhook has {len(hook.of('messages_failing'))} messages_failing event(s)", start)
    for spike in hook.of("content_spike"):
        say(f"and a content warning (never a page): {spike['summary']!r}", start)


class TenantHook:
    """Acme's webhook endpoint, on a loopback port of this process: keeps each event whose
    signature (`healthd.alerts.webhook.verify`) holds, and refuses the others."""

    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}/hooks/acme"
        self.events: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> TenantHook:
        app = web.Application()
        app.add_routes([web.post("/hooks/acme", self._receive)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, self._socket).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        timestamp = request.headers.get(webhook.TIMESTAMP_HEADER, "")
        signature = request.headers.get(webhook.SIGNATURE_HEADER, "")
        if not webhook.verify(self._secret, timestamp, body, signature, now=time.time()):
            return web.Response(status=401)
        self.events.append(json.loads(body))
        self._arrived.set()
        return web.Response(status=204)

    def of(self, rule: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("rule") == rule]

    async def first(self, rule: str) -> dict[str, Any]:
        while not self.of(rule):
            self._arrived.clear()
            await self._arrived.wait()
        return self.of(rule)[0]


async def _until(predicate: Any, poll: float = 0.2) -> None:
    # The narrator watches the daemon from outside, as a person would; polling is the point.
    while not predicate():  # noqa: ASYNC110
        await asyncio.sleep(poll)


async def _pagerduty_event(sim: SimClient, action: str) -> dict[str, Any]:
    while True:
        events = await asyncio.to_thread(sim.pagerduty_events)
        for event in events:
            if event["body"]["event_action"] == action:
                return event
        await asyncio.sleep(0.5)


def say(text: str, start: float | None = None) -> None:
    stamp = f"[{time.monotonic() - start:5.1f}s] " if start is not None else ""
    print(f"{stamp}{text}", file=sys.stdout, flush=True)

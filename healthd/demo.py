"""`healthd demo`: the daemon against the built-in provider simulator, with a scripted outage.

Nothing to configure and no credentials: the simulator plays every provider and
PagerDuty (over TLS with a throwaway CA), the store is a SQLite file in a temporary
folder, and the thresholds are shortened so the whole story fits in two minutes:
the bridge goes dark, healthd notices, pages after the (shortened) allowance, the bridge
comes back and the page is resolved. The screen narrates each step; the daemon's own
JSON log goes to a file beside the store.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from healthd import config, log
from healthd.daemon import Daemon
from healthd.model import Status
from healthd.registry import probes
from healthd.sim.app import SimulatorThread
from healthd.sim.client import SimClient

BRIDGE = "bridge-dc1"
PAGE_AFTER = 30  # seconds; ten minutes in production
OUTAGE_STARTS = 12  # seconds after start
RECOVERY_AFTER_PAGE = 15  # seconds


def demo_config(sim: SimulatorThread, workdir: Path, listen: str) -> dict[str, Any]:
    """The demo's config: the shared bridge plus one integration per other registered probe."""
    integrations: list[dict[str, Any]] = [
        {
            "id": BRIDGE,
            "name": "iMessage bridge (datacenter 1)",
            "provider": "imessage_bridge",
            "tenant": "platform",
            "base_url": f"{sim.http_url}/bridges/dc1",
            "credentials": {"password": "env:HEALTHD_DEMO_BRIDGE_PASSWORD"},
        }
    ]
    integrations += [i for p, i in _tenant_integrations(sim).items() if p in probes()]
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
            "rules": {"bridge_unreachable": {"page_after": f"{PAGE_AFTER}s"}},
            "outbox": {"backoff_initial": "1s", "backoff_max": "5s"},
        },
        "api": {
            "tokens": [
                {"name": "demo-admin", "role": "admin", "token": "env:HEALTHD_DEMO_ADMIN_TOKEN"},
                {"name": "acme-settings", "tenant": "acme", "token": "env:HEALTHD_DEMO_ACME_TOKEN"},
            ]
        },
        "integrations": integrations,
    }


def _tenant_integrations(sim: SimulatorThread) -> dict[str, dict[str, Any]]:
    """Per provider, a tenant's integration against the simulator (added once it is registered)."""
    return {}


def run_demo(*, listen: str, duration: float | None) -> int:
    env = {
        "HEALTHD_DEMO_BRIDGE_PASSWORD": "sim-bridge-password",
        "HEALTHD_DEMO_ROUTING_KEY": "R0DEMO" + "0" * 26,
        "HEALTHD_DEMO_ADMIN_TOKEN": "admin-" + secrets.token_urlsafe(18),
        "HEALTHD_DEMO_ACME_TOKEN": "acme-" + secrets.token_urlsafe(18),
    }
    os.environ.update(env)
    with tempfile.TemporaryDirectory(prefix="healthd-demo-") as tmp, SimulatorThread() as sim:
        workdir = Path(tmp)
        doc = demo_config(sim, workdir, listen)
        (workdir / "healthd.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        cfg = config.loads(yaml.safe_dump(doc), source="demo")
        logfile = (workdir / "healthd.log").open("w")
        log.configure(list(env.values()), stream=logfile)
        try:
            asyncio.run(_main(cfg, sim, env, workdir, duration))
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
) -> None:
    async with Daemon(cfg) as daemon:
        _banner(daemon, sim, env, workdir)
        story = asyncio.create_task(_story(daemon, sim.client()), name="demo-story")
        try:
            if duration is None:
                await daemon.wait()
            else:
                await asyncio.wait({story}, timeout=duration)
        finally:
            story.cancel()


def _banner(daemon: Daemon, sim: SimulatorThread, env: dict[str, str], workdir: Path) -> None:
    admin = env["HEALTHD_DEMO_ADMIN_TOKEN"]
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
        curl -s {daemon.url}/metrics | grep healthd_integration_status

Script: the iMessage bridge goes offline after {OUTAGE_STARTS}s; healthd pages on-call once it
has been unreachable for {PAGE_AFTER}s (10 minutes in production), then the bridge comes back
and the page is resolved. Ctrl-C stops the demo.
""",
        flush=True,
    )


async def _story(daemon: Daemon, sim: SimClient) -> None:
    start = time.monotonic()
    await _until(lambda: daemon.runner.states[BRIDGE].status is Status.OK)
    say(f"{BRIDGE} is healthy: it answers its ping and iMessage is signed in", start)
    await asyncio.sleep(max(0.0, OUTAGE_STARTS - (time.monotonic() - start)))
    await asyncio.to_thread(sim.set_scenario, "imessage_bridge", "offline", "dc1")
    say("the bridge's Mac goes offline (simulated): connections are dropped", start)
    await _until(lambda: daemon.runner.states[BRIDGE].unreachable_since is not None)
    say("healthd sees the bridge unreachable; the page waits out the allowance", start)
    await _until(lambda: daemon.runner.states[BRIDGE].status is Status.UNREACHABLE)
    say("status is now 'unreachable' after consecutive failed probes (see /metrics)", start)
    trigger = await _pagerduty_event(sim, "trigger")
    say(f"PagerDuty received a trigger: {trigger['body']['payload']['summary']!r}", start)
    await asyncio.sleep(RECOVERY_AFTER_PAGE)
    await asyncio.to_thread(sim.set_scenario, "imessage_bridge", "ok", "dc1")
    say("the bridge is back online", start)
    await _pagerduty_event(sim, "resolve")
    say("PagerDuty received the resolve: the incident is closed, once", start)
    say("the daemon keeps running; Ctrl-C to stop", start)


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

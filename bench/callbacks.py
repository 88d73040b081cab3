"""Provider callbacks: throughput and answer time with signature verification, while probes run.

    python bench/callbacks.py [--callbacks 10000] [--concurrency 50] [--bridges 300]
                              [--integrations 100000]

Three processes on 127.0.0.1: the simulator (`python -m healthd.sim`, 50 ms per request),
`healthd run` (a SQLite store; `--bridges` iMessage bridges probed every 10 s, so probes
run all through the burst, plus one Twilio and one SendGrid integration that take
callbacks), and this script, the load generator. Every callback is signed beforehand
(`healthd.sim.callbacks`, as the providers sign), so the generator's own cost is posting.

Printed, each beside its floor measured in the same run:
- Twilio status callbacks (one message each) and SendGrid Event Webhook batches (100
  events each): requests and messages per second, p50 and p99 answer time, and the daemon
  process's CPU per callback (one core's worth of callbacks per second = 1 / that);
  the floor is the SDK's verification alone, timed in this process;
- the time until the ledger had counted all of them (`healthd_delivery_messages_total`);
- the ledger's memory per integration at `--integrations` (its windows: the only
  per-integration memory it holds), for a quiet and a busy integration;
- the series the delivery metrics add to `/metrics`, seen and bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from _machine import (
    healthd_command,
    print_header,
    print_table,
    process_cpu_seconds,
    rss_bytes,
)
from sweep import simulator

from healthd.catalog import load as load_catalog
from healthd.ledger.windows import Key, Windows
from healthd.sim.callbacks import (
    SendGridSigner,
    Signed,
    sendgrid_event,
    twilio_fields,
    twilio_status,
)
from healthd.sim.fixtures import integration_entry, sim_credentials
from healthd.sim.twilio import DEFAULT_TOKEN

PASSWORD_ENV = "HEALTHD_BENCH_BRIDGE_PASSWORD"
ACCOUNT_SID = "AC" + "e5" * 16
TWILIO_ID, SENDGRID_ID = "tw-bench", "sg-bench"
SENDGRID_KEY = "SG.bench"
BATCH = 100
COUNTED_TIMEOUT = 120.0
FAILURES = (("undelivered", "30003"), ("undelivered", "30007"), ("failed", "21610"))


def config(sim_url: str, bridges: int, store: Path, public_key: str) -> dict[str, Any]:
    entries = [
        integration_entry(
            "imessage_bridge",
            sim_url,
            f"b{i}",
            id=f"bridge-{i:05d}",
            tenant=f"tenant{i % 100}",
            credentials={"password": f"env:{PASSWORD_ENV}"},
        )
        for i in range(bridges)
    ]
    twilio = integration_entry(
        "twilio", sim_url, ACCOUNT_SID, id=TWILIO_ID, tenant="acme", credentials=_env("TWILIO")
    )
    sendgrid = integration_entry(
        "sendgrid", sim_url, SENDGRID_KEY, id=SENDGRID_ID, tenant="acme", credentials=_env("SG")
    )
    sendgrid["callback_public_key"] = public_key
    return {
        "listen": "127.0.0.1:0",
        "store": f"sqlite:///{store}",
        "defaults": {"interval": "10s", "timeout": "5s", "jitter": "1s"},
        "integrations": [*entries, twilio, sendgrid],
    }


def _env(provider: str) -> Any:
    return lambda name: f"env:HEALTHD_BENCH_{provider}_{name.upper()}"


def twilio_callbacks(url: str, n: int) -> list[Signed]:
    out = []
    for i in range(n):
        status, code = FAILURES[i % 3] if i % 10 == 0 else ("delivered", None)
        fields = twilio_fields(ACCOUNT_SID, f"SM{i:032d}", status, code)
        out.append(twilio_status(url, DEFAULT_TOKEN, fields))
    return out


def sendgrid_batches(signer: SendGridSigner, n: int, now: int) -> list[Signed]:
    return [
        signer.events(
            [
                sendgrid_event(f"m{b}-{i}.filter", "delivered", now)
                if i % 10
                else sendgrid_event(f"m{b}-{i}.filter", "bounce", now, status="5.1.1")
                for i in range(BATCH)
            ],
            now,
        )
        for b in range(n)
    ]


async def post_all(url: str, requests: list[Signed], concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    pending = iter(requests)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for signed in pending:
                t0 = time.perf_counter()
                async with session.post(url, data=signed.body, headers=dict(signed.headers)) as r:
                    await r.read()
                latencies.append(time.perf_counter() - t0)
                statuses[r.status] = statuses.get(r.status, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"latencies": latencies, "elapsed": elapsed, "statuses": statuses}


def metrics_text(url: str) -> str:
    with urllib.request.urlopen(url + "/metrics", timeout=30) as answer:
        text: str = answer.read().decode()
    return text


def counted(text: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("healthd_delivery_messages_total{")
    )


def delivery_series(text: str) -> int:
    families = ("healthd_delivery_messages_total{", "healthd_callbacks_total{")
    return sum(1 for line in text.splitlines() if line.startswith(families))


def verification_floor(
    signed: Signed, url: str, signer: SendGridSigner, batch: Signed
) -> dict[str, float]:
    """CPU per verification by the SDKs alone, in this process: what no daemon can beat."""
    from sendgrid.helpers.eventwebhook import EventWebhook
    from twilio.request_validator import RequestValidator

    fields = dict(pair.split("=", 1) for pair in signed.body.decode().split("&"))
    signature = signed.headers["X-Twilio-Signature"]
    n = 5000
    t0 = time.process_time()
    for _ in range(n):
        RequestValidator(DEFAULT_TOKEN).validate(url, fields, signature)
    twilio = (time.process_time() - t0) / n
    webhook = EventWebhook()
    key = webhook.convert_public_key_to_ecdsa(signer.public_key)
    payload = batch.body.decode()
    m = 500
    t0 = time.process_time()
    for _ in range(m):
        webhook.verify_signature(
            payload,
            batch.headers["X-Twilio-Email-Event-Webhook-Signature"],
            batch.headers["X-Twilio-Email-Event-Webhook-Timestamp"],
            key,
        )
    return {"twilio": twilio, "sendgrid": (time.process_time() - t0) / m}


def burst(
    daemon_url: str, pid: int, name: str, requests: list[Signed], messages: int, c: int
) -> list[str]:
    target = f"{daemon_url}/callbacks/{name}"
    before = counted(metrics_text(daemon_url))
    cpu0 = process_cpu_seconds(pid)
    result = asyncio.run(post_all(target, requests, c))
    cpu = process_cpu_seconds(pid) - cpu0
    t0 = time.perf_counter()
    while counted(metrics_text(daemon_url)) - before < messages:
        if time.perf_counter() - t0 > COUNTED_TIMEOUT:
            break
        time.sleep(0.2)
    all_counted = time.perf_counter() - t0
    got = counted(metrics_text(daemon_url)) - before
    lat = sorted(result["latencies"])
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    return [
        name,
        f"{len(requests):,}",
        f"{messages:,}",
        f"{len(requests) / result['elapsed']:,.0f}",
        f"{messages / result['elapsed']:,.0f}",
        f"{statistics.median(lat) * 1000:.1f}",
        f"{p99 * 1000:.1f}",
        f"{cpu / len(requests) * 1e6:,.0f}",
        f"{len(requests) / cpu:,.0f}" if cpu else "-",
        f"{got:,.0f} in +{all_counted:.1f} s",
        json.dumps(result["statuses"]),
    ]


def ledger_memory(n: int, per_integration: int, keys: int) -> float:
    """Bytes per integration of the ledger's windows (the RSS they add / n), with
    `per_integration` outcomes spread over the last 24 hours, oldest first, in `keys`
    distinct (status, code, category) counters. A ring's arrays are fixed in size, so the
    figure depends on the counters, not on the number of outcomes."""
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    step = timedelta(days=1) / per_integration
    times = [now - step * i for i in reversed(range(per_integration))]
    kinds = [Key("undelivered", f"3000{k}", "recipient") for k in range(keys)]
    gc.collect()
    before = rss_bytes()
    windows = []
    for _ in range(n):
        w = Windows()
        for i, at in enumerate(times):
            w.add(kinds[i % keys], at)
        windows.append(w)
    gc.collect()
    return (rss_bytes() - before) / n


def series_bound() -> int:
    """The most series `healthd_delivery_messages_total` can have, whatever the fleet: per
    provider, counted statuses x (catalogue codes + "other" + no code), each code in its one
    category; `healthd_callbacks_total` adds providers x 8 outcomes."""
    catalog = load_catalog()
    statuses = {"twilio": 5, "sendgrid": 6}  # final statuses and reactions each counts
    codes = {p: sum(1 for e in catalog if e.provider == p) for p in statuses}
    return sum(statuses[p] * (codes[p] + 2) for p in statuses) + len(statuses) * 8


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--callbacks", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--bridges", type=int, default=300)
    parser.add_argument("--integrations", type=int, default=100_000)
    args = parser.parse_args(argv)
    print_header(
        "Provider callbacks (issue 12)",
        f"{args.callbacks:,} Twilio callbacks and {args.callbacks // BATCH:,} SendGrid batches"
        f" of {BATCH} at concurrency {args.concurrency}, while {args.bridges} bridges are"
        " probed every 10 s (simulator at 50 ms); SQLite store",
    )
    signer = SendGridSigner()
    with simulator(0.05) as (sim_url, _), tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "healthd.yaml"
        doc = config(sim_url, args.bridges, Path(tmp) / "h.db", signer.public_key)
        path.write_text(yaml.safe_dump(doc))
        command, env = healthd_command("run", "--config", str(path))
        env[PASSWORD_ENV] = sim_credentials("imessage_bridge", "b0")["password"]
        for name, value in sim_credentials("twilio", ACCOUNT_SID).items():
            env[f"HEALTHD_BENCH_TWILIO_{name.upper()}"] = value
        for name, value in sim_credentials("sendgrid", SENDGRID_KEY).items():
            env[f"HEALTHD_BENCH_SG_{name.upper()}"] = value
        proc = subprocess.Popen(
            command,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert proc.stderr is not None
            url = ""
            for line in proc.stderr:
                if '"listen"' in line:
                    url = json.loads(line)["listen"]
                    break
            if not url:
                raise RuntimeError(f"healthd run exited with {proc.wait()} before listening")
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            time.sleep(12)  # the first round of probes is over; the next ones keep running
            target = f"{url}/callbacks/{TWILIO_ID}"
            twilio = twilio_callbacks(target, args.callbacks)
            batches = sendgrid_batches(signer, args.callbacks // BATCH, int(time.time()))
            floor = verification_floor(twilio[0], target, signer, batches[0])
            rows = [
                burst(url, proc.pid, TWILIO_ID, twilio, len(twilio), args.concurrency),
                burst(url, proc.pid, SENDGRID_ID, batches, len(batches) * BATCH, args.concurrency),
            ]
            seen = delivery_series(metrics_text(url))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print_table(
        rows,
        [
            "integration",
            "requests",
            "messages",
            "requests/s",
            "messages/s",
            "p50 ms",
            "p99 ms",
            "daemon CPU µs/request",
            "requests per CPU-second",
            "counted",
            "answers",
        ],
    )
    print(
        f"\nFloor (the SDK's verification alone): Twilio RequestValidator"
        f" {floor['twilio'] * 1e6:.0f} µs per callback; SendGrid EventWebhook"
        f" {floor['sendgrid'] * 1e6:.0f} µs per batch of {BATCH}\n"
    )
    memory = [
        [
            label,
            f"{args.integrations:,}",
            str(per),
            str(keys),
            f"{ledger_memory(args.integrations, per, keys):,.0f}",
        ]
        for label, per, keys in (("quiet", 24, 2), ("busy", 240, 5))
    ]
    print_table(
        memory, ["integration", "integrations", "outcomes / 24 h", "counters", "bytes each"]
    )
    print(
        f"\nSeries added to /metrics: {seen} seen in this run; at most {series_bound():,}"
        " whatever the number of integrations (no integration label)."
    )


if __name__ == "__main__":
    main()

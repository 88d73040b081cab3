"""`healthd history ID`: one integration's history at a terminal, as the status page shows it.

The numbers come from the running daemon's history API, not from the store: the daemon
owns its database (one process per file, `healthd.store._lock`), and reading through the
API gives the operator exactly what the page and the API say. The config names where the
daemon listens and holds its admin token (resolved from `env:`/`file:` as the daemon
resolves it); `--url` points elsewhere.

Exit codes: 0 printed; 1 no integration by that id; 2 a bad config; 3 no daemon answered.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from healthd import history
from healthd.config import Config

# How marks of the 90-day bar and the latency line read; lowest first.
BAR_MARKS = (("█", 1.0), ("▆", 0.99), ("▃", 0.9), ("▁", 0.0))
NO_DATA = "·"
SPARK = "▁▂▃▄▅▆▇█"
LATEST_INCIDENTS = 5
SAID = {"24h": "24 h", "7d": "7 d", "30d": "30 d"}
TIMEOUT_SECONDS = 10


class Unreachable(Exception):
    """No daemon answered at the URL (or it answered something that is not healthd's API)."""


class NotFound(Exception):
    """The daemon has no integration by that id (or this token may not see it)."""


def daemon_url(cfg: Config) -> str:
    host, port = cfg.listen
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def admin_token(cfg: Config) -> str | None:
    """The first admin token of the config; None when the API has no tokens (open)."""
    for token in cfg.api.tokens:
        if token.role == "admin":
            return token.token.reveal()
    return None


def fetch(url: str, token: str | None, integration_id: str) -> dict[str, Any]:
    """Everything the report shows, in one dict of API answers."""
    quoted = urllib.parse.quote(integration_id, safe="")
    base = f"{url}/api/v1/integrations/{quoted}"
    found: dict[str, Any] = {"integration": _get(f"{base}", token)}
    for name in history.WINDOWS:
        found[name] = _get(f"{base}/history?window={name}", token)
    query = urllib.parse.urlencode({"integration": integration_id, "limit": LATEST_INCIDENTS})
    found["incidents"] = _get(f"{url}/api/v1/incidents/history?{query}", token)
    return found


def _get(url: str, token: str | None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:
            return json.load(answer)
    except urllib.error.HTTPError as exc:
        with exc:
            if exc.code == 404:
                raise NotFound(_detail(exc)) from None
            raise Unreachable(f"{exc.code}: {_detail(exc)}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unreachable(f"no healthd answered at {url.split('/api/')[0]} ({reason})") from None


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.load(exc).get("detail", exc.reason))
    except ValueError:
        return str(exc.reason)


def render(found: dict[str, Any], out: TextIO) -> None:
    """The report: status, shares, the 90-day bar, latency, incidents, changes of status."""
    view = found["integration"]
    since = f" since {_when(view['since'])}" if view.get("since") else ""
    print(
        f"{view['id']} · {view['provider_name']} · workspace {view['tenant']}"
        f" · {view['status']}{since}",
        file=out,
    )
    for problem in view.get("problems", []):
        print(f"  {problem['summary']}", file=out)
        if problem.get("remediation"):
            print(f"  fix: {problem['remediation']}", file=out)
    shares = "   ".join(
        f"{SAID[name]} {history.percent(found[name]['uptime'])}" for name in history.SHARE_WINDOWS
    )
    print(f"\nUptime      {shares}", file=out)
    bar = found[history.BAR_WINDOW]["buckets"]
    print(f"90 days     {''.join(_bar_mark(b['uptime']) for b in bar)}", file=out)
    print(
        f"            {_day(bar[0]['start'])} to today; █ every check worked, ▆ 99% or"
        f" more, ▃ 90% or more, ▁ less, {NO_DATA} no checks",
        file=out,
    )
    latency = [b["latency_mean_seconds"] for b in found[history.LATENCY_WINDOW]["buckets"]]
    print(f"Latency     {_spark(latency)}  (mean per hour, last 24 h; {_range(latency)})", file=out)
    _incidents(found["incidents"]["incidents"], out)
    _transitions(found["24h"]["transitions"], out)


def _incidents(incidents: Sequence[dict[str, Any]], out: TextIO) -> None:
    if not incidents:
        print("\nIncidents   none kept", file=out)
        return
    print(f"\nIncidents (latest {len(incidents)}, newest first)", file=out)
    for incident in incidents:
        lasted = history.describe(incident["duration_seconds"])
        state = f"open for {lasted}" if incident["open"] else f"lasted {lasted}"
        print(
            f"  {_when(incident['opened_at'])}  {state:<18} {incident['summary']}",
            file=out,
        )


def _transitions(transitions: Sequence[dict[str, Any]], out: TextIO) -> None:
    if not transitions:
        print("\nChanges of status in the last 24 h: none", file=out)
        return
    print("\nChanges of status in the last 24 h (newest first)", file=out)
    for t in transitions:
        print(f"  {_when(t['at'])}  {t['from_status']} -> {t['to_status']}", file=out)


def _bar_mark(share: float | None) -> str:
    if share is None:
        return NO_DATA
    return next(mark for mark, floor in BAR_MARKS if share >= floor)


def _spark(values: Sequence[float | None]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return NO_DATA * len(values)
    low, high = min(known), max(known)
    step = (high - low) / (len(SPARK) - 1) or 1.0
    return "".join(NO_DATA if v is None else SPARK[round((v - low) / step)] for v in values)


def _range(values: Sequence[float | None]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "no checks"
    return f"{min(known) * 1000:.0f} to {max(known) * 1000:.0f} ms"


def _when(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _day(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d")

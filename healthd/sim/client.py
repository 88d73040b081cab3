"""A small synchronous client for the simulator's control API (`control.py`).

Synchronous on purpose: tests, the `healthd demo` CLI and benchmarks call it from plain
code or from another thread than the simulator's loop. Every call is bounded by `timeout`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from healthd.sim.base import ANY
from healthd.sim.sendgrid_events import EVENTS_PATH
from healthd.sim.twilio import CALLBACKS_PATH

# Posting callbacks waits on healthd answering each one: on a loaded machine that takes
# far longer than a control call.
CALLBACKS_TIMEOUT = 120.0


class SimClientError(RuntimeError):
    """The control API answered an error; `status` is its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(f"simulator control API answered {status}: {message}")


class SimClient:
    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        prefix: str = "/_sim",
        timeout: float | None = None,
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base_url}{prefix}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            exc.close()
            try:
                message = json.loads(raw).get("error", raw.decode(errors="replace"))
            except (ValueError, AttributeError):
                message = raw.decode(errors="replace")
            raise SimClientError(exc.code, str(message)) from None

    def describe(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "")
        return result

    def set_scenario(
        self, provider: str, scenario: str, target: str = ANY, **params: Any
    ) -> dict[str, Any]:
        body = {"scenario": scenario, "target": target, "params": params}
        result: dict[str, Any] = self._call("POST", f"/{provider}/scenario", body)
        return result

    def send_twilio_callbacks(
        self, target: str, url: str, *, replays: int = 0, forged: int = 0, via: str = "status"
    ) -> dict[str, Any]:
        """Has the Twilio simulator post status callbacks for `target`'s messages to `url`
        (`via="events"`: as an Event Streams webhook sink's CloudEvents)."""
        body = {"target": target, "url": url, "replays": replays, "forged": forged, "via": via}
        return self._post_callbacks(CALLBACKS_PATH, body)

    def send_sendgrid_events(self, target: str, url: str, **params: Any) -> dict[str, Any]:
        """Has the SendGrid simulator post signed events for the mail `target` (an API key)
        sent to `url`; `params` as `healthd.sim.sendgrid_events` lists them."""
        return self._post_callbacks(EVENTS_PATH, {"target": target, "url": url, **params})

    def _post_callbacks(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "POST", path, body, prefix="", timeout=CALLBACKS_TIMEOUT
        )
        return result

    def reset(self) -> None:
        self._call("POST", "/reset")

    def pagerduty_events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self._call("GET", "/pagerduty/events")["events"]
        return events

    def pagerduty_incidents(self) -> list[dict[str, Any]]:
        incidents: list[dict[str, Any]] = self._call("GET", "/pagerduty/incidents")["incidents"]
        return incidents

    def clear_pagerduty(self) -> None:
        self._call("DELETE", "/pagerduty/events")

"""PagerDuty Events API v2: a pure body builder and a notifier that sends through the SDK.

`build_event()` is the whole request body (PROVIDERS.md D1), built without I/O so its
field rules are tested on their own. `PagerDutyNotifier.send()` hands the same body to the
`pagerduty` package's `EventsApiV2Client.send_event()` in a worker thread (the client is
blocking httpx2) and classifies the outcome for the outbox.

The worker is a daemon thread of its own, not the loop's executor: a send that hangs
until its timeout must not hold up shutdown, and the loop's executor (and any
`concurrent.futures` pool) is joined when the process exits. The caller's wait is bounded
(the outbox's send timeout, the daemon's flush budget); an abandoned thread ends with its
request's timeout, or with the process.

The SDK's own retrying is turned off so the durable outbox does the retrying, with
backoff that survives restarts (PROVIDERS.md D2): by default the client retries 429
forever and 5xx several times while sleeping in its thread, and when it gives up it logs
"Non-transient HTTP error" at error level, even for a 429 that healthd retries. So every
answer other than 2xx leaves the SDK at once (`_OneAttemptClient`), one request per send,
and healthd alone classifies it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import aiohttp
import pagerduty
import structlog
from pydantic import BaseModel, ConfigDict, ValidationError

from healthd.alerts import channels
from healthd.alerts._retry import is_transient, parse_retry_after
from healthd.alerts.settings import AlertingSettings, PagerDutySettings
from healthd.clock import Clock
from healthd.errors import DeliveryError
from healthd.model import AlertEvent, EventAction

DEDUP_KEY_LIMIT = 255  # Events API v2: dedup_key is at most 255 characters
SUMMARY_LIMIT = 1024
_BODY_EXCERPT = 300
CLOSE_SECONDS = 1.0
_T = TypeVar("_T")

log = structlog.get_logger("healthd.alerts")


def build_event(event: AlertEvent, routing_key: str) -> dict[str, Any]:
    """The Events API v2 body for `event`. A resolve carries only the key and the action."""
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": event.action.value,
        "dedup_key": fit_dedup_key(event.dedup_key),
    }
    if event.action is not EventAction.TRIGGER:
        return body
    payload: dict[str, Any] = {
        "summary": event.summary[:SUMMARY_LIMIT],
        "source": event.source,
        "severity": event.severity.value,
    }
    optional = {
        "timestamp": event.timestamp.isoformat() if event.timestamp else None,
        "component": event.component,
        "group": event.group,
        "class": event.class_,
        "custom_details": dict(event.custom_details) or None,
    }
    payload.update({k: v for k, v in optional.items() if v is not None})
    body["payload"] = payload
    if event.links:
        body["links"] = [{"href": href, "text": text} for href, text in event.links]
    return body


def fit_dedup_key(key: str) -> str:
    """Keys over PagerDuty's 255 characters keep a prefix and a digest, so stay unique."""
    if len(key) <= DEDUP_KEY_LIMIT:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"{key[: DEDUP_KEY_LIMIT - 17]}#{digest}"


class _ErrorBody(BaseModel):
    """PagerDuty's error body: `{"status": ..., "message": ..., "errors": [...]}` (D1)."""

    model_config = ConfigDict(extra="ignore")

    status: str = ""
    message: str = ""
    errors: list[str] = []


class _OneAttemptClient(pagerduty.EventsApiV2Client):
    """The SDK client, making exactly one request per event.

    `postprocess` runs on every response before the SDK's retry logic looks at it; raising
    there hands the answer to `PagerDutyNotifier._http_error` as it came, with no sleep in
    the thread and no log line of the SDK's.
    """

    def postprocess(self, response: Any) -> None:
        if not response.is_success:
            raise pagerduty.HttpError(f"PagerDuty {response.status_code}", response)


class PagerDutyNotifier:
    """Sends alert events to PagerDuty; see `healthd.interfaces.Notifier`."""

    channel = channels.PAGERDUTY

    def __init__(self, settings: PagerDutySettings) -> None:
        self._settings = settings
        self._key = settings.routing_key.reveal()
        kwargs: dict[str, Any] = {}
        if settings.ca_bundle is not None:
            # httpx2 deprecates verify=<path>; an SSLContext is the supported form.
            kwargs["verify"] = ssl.create_default_context(cafile=str(settings.ca_bundle))
        client = _OneAttemptClient(self._key, base_url=settings.events_url, **kwargs)
        # request() passes `self.timeout` on every call, overriding the constructor's.
        client.timeout = settings.timeout.total_seconds()  # type: ignore[assignment]
        # A network error is raised at the first attempt, without a sleep.
        client.max_network_attempts = 0
        self._client = client

    async def send(self, event: AlertEvent) -> None:
        body = build_event(event, self._key)
        properties = {
            k: v for k, v in body.items() if k not in ("routing_key", "event_action", "dedup_key")
        }
        try:
            await _in_daemon_thread(
                self._client.send_event,
                body["event_action"],
                dedup_key=body["dedup_key"],
                **properties,
            )
        except pagerduty.HttpError as exc:
            raise self._http_error(exc.response) from None
        except pagerduty.Error as exc:
            cause = exc.__cause__ or exc
            raise DeliveryError(
                self._scrub(
                    f"cannot reach PagerDuty at {self._settings.events_url}: "
                    f"{type(cause).__name__}: {cause}"
                ),
                permanent=False,
            ) from None
        except (ValueError, TypeError) as exc:
            # The SDK refuses the event itself (a bad action or dedup key): sending the
            # same event again cannot help.
            raise DeliveryError(
                self._scrub(f"PagerDuty client refused the event: {exc}"), permanent=True
            ) from None

    def _http_error(self, response: Any) -> DeliveryError:
        status = int(response.status_code)
        detail = self._scrub(_describe_body(response.text))
        message = f"PagerDuty answered {status}: {detail}" if detail else f"PagerDuty {status}"
        if is_transient(status):
            return DeliveryError(
                message, permanent=False, retry_after=parse_retry_after(response.headers)
            )
        if 200 <= status < 300:
            # A 2xx without `dedup_key` (ServerHttpError): not PagerDuty, perhaps a proxy.
            return DeliveryError(message, permanent=False)
        return DeliveryError(message, permanent=True)

    def _scrub(self, text: str) -> str:
        """Remove the routing key and the SDK's truncated form of it (`*` + last four)."""
        for secret in (self._key, "*" + self._key[-4:]):
            text = text.replace(secret, "[routing key]")
        return text

    async def close(self) -> None:
        """Closes the SDK client's connection pool, waiting at most CLOSE_SECONDS (a send
        still hanging in its thread may hold the pool)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_SECONDS):
                await _in_daemon_thread(self._client.close)


async def _in_daemon_thread(work: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """`work(*args, **kwargs)` in a new daemon thread; cancelling the await abandons it."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[_T] = loop.create_future()

    def settle(result: _T | None, error: BaseException | None) -> None:
        if done.cancelled():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        result: _T | None = None
        error: BaseException | None = None
        try:
            result = work(*args, **kwargs)
        except BaseException as exc:  # handed to the awaiting task
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed while this hung
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="healthd-pagerduty", daemon=True).start()
    return await done


def from_settings(
    settings: AlertingSettings, session: aiohttp.ClientSession, clock: Clock
) -> list[PagerDutyNotifier]:
    """The notifier table's row (`healthd.alerts.notifiers`). Warns loudly when PagerDuty is
    not set up: a pager that silently will not page is the worst failure."""
    if settings.pagerduty is None:
        log.warning(
            "pagerduty_not_configured",
            message="alerting.pagerduty is not set: rules are evaluated and incidents are "
            "recorded, but NO PAGE WILL BE SENT to on-call",
        )
        return []
    return [PagerDutyNotifier(settings.pagerduty)]


def _describe_body(text: str) -> str:
    try:
        body = _ErrorBody.model_validate_json(text)
    except ValidationError:
        excerpt = " ".join(text.split())[:_BODY_EXCERPT]
        return excerpt
    parts = [body.message or body.status, "; ".join(body.errors)]
    return " - ".join(p for p in parts if p)

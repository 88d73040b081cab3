"""The twilio SDK's transport, on healthd's shared aiohttp session.

twilio-python's own `AsyncTwilioHttpClient` opens a `ClientSession` per client (or per request
without pooling); at 10,000 integrations that is 10,000 pools. This client hands every request
to `probes._http.request_json` on `ctx.session` instead, inside the probe's deadline, so the SDK
keeps doing what it is good at (URLs, paging, error parsing) and healthd keeps one pool.

A request that gets no usable answer raises `TransportFailure` (timeout, refused connection,
a 2xx that is not JSON, a body past the size limit); an HTTP error status is returned, for
the SDK to turn into its own exceptions. Nothing here logs: the SDK's request logging is
bypassed on purpose.

The body limit is `probes._http.MAX_BODY_BYTES`, raised for a list call by its `PageSize`
(up to 1,000 records, `PER_RECORD_BYTES` each), so a full page of long messages fits and
an endless or bombed body still stops early.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
from twilio.http import AsyncHttpClient
from twilio.http.response import Response

from healthd.interfaces import ProbeContext
from probes._http import MAX_BODY_BYTES, TransportFailure, request_json

# Room for one list record: a message with a 1,600-character body, JSON-escaped as
# `\uXXXX` where it is not ASCII, and its URIs.
PER_RECORD_BYTES = 16 * 1024
MAX_PAGE_SIZE = 1000  # Twilio's `PageSize` maximum (PROVIDERS.md A2, A6)


class SessionHttpClient(AsyncHttpClient):  # type: ignore[misc]  # the SDK is untyped
    """`twilio.http.AsyncHttpClient` over `ctx.session`; every request ends by `deadline`.

    `deadline` is a `loop.time()` value: each request gets the time left, never more, so a
    probe making several calls stays within the runner's timeout as a whole.
    """

    def __init__(self, ctx: ProbeContext, deadline: float) -> None:
        super().__init__(logger=None, is_async=True, timeout=None)
        self._ctx = ctx
        self._deadline = deadline

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109  (the SDK's signature)
        allow_redirects: bool = False,
    ) -> Response:
        left = self._deadline - asyncio.get_running_loop().time()
        if timeout is not None:
            left = min(left, timeout)
        if left <= 0:
            raise TransportFailure("timeout", f"no answer within {self._ctx.timeout:g}s")
        if auth:
            # aiohttp 3.14 deprecates BasicAuth objects in favour of a ready header.
            headers = {**(headers or {}), "Authorization": aiohttp.encode_basic_auth(*auth)}
        answer = await request_json(
            self._ctx.with_timeout(left),
            method,
            url,
            params=_strings(params),
            headers=headers,
            data=_strings(data),
            max_bytes=_body_limit(url, params),
        )
        return Response(answer.status, answer.text, answer.headers)


def _body_limit(url: str, params: dict[str, object] | None) -> int:
    """`MAX_BODY_BYTES`, or room for `PageSize` records when the call asks for a page (in
    `params` for a first page, in the URL of the next ones)."""
    query = parse_qs(urlsplit(url).query)
    size = (params or {}).get("PageSize") or (query.get("PageSize") or ["0"])[0]
    try:
        page_size = int(str(size))
    except ValueError:
        page_size = 0
    # A next-page URL is Twilio's to write: no more than its documented maximum counts.
    return max(MAX_BODY_BYTES, min(page_size, MAX_PAGE_SIZE) * PER_RECORD_BYTES)


def _strings(values: dict[str, Any] | None) -> dict[str, str] | None:
    """The SDK's query and form values as strings (healthd sends scalar values only)."""
    if not values:
        return None
    return {k: _scalar(v) for k, v in values.items()}


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)

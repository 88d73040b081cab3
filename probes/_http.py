"""Helpers every probe shares: one JSON request, and turning what went wrong into a Finding.

A probe's `findings()` should read as a short list of steps; the plumbing of timeouts,
refused connections, HTML-instead-of-JSON, oversized answers and catalogue lookups lives
here once.

Text from outside (a body snippet, a provider's message) is trimmed here with `excerpt`;
masking what it may echo of the request (the bridge's `?password=`) is done for every
finding in one place, `healthd.probing`, which knows the integration's credentials.
"""

from __future__ import annotations

import asyncio
import errno
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from healthd.catalog import Catalog
from healthd.interfaces import Probe, ProbeContext
from healthd.model import Category, Finding, Status

# The most of one answer's body that is read, after gzip/deflate decoding. The largest
# answer healthd asks for is a Twilio page of messages, about 1-2 KB a message (a message
# body is up to 1,600 characters): `_twilio_http` raises the limit with the page size.
MAX_BODY_BYTES = 1 << 20
_READ_CHUNK = 64 * 1024
# aiohttp rounds a timeout of more than `ceil_threshold` (5 s) up to the loop clock's next
# whole second. The probe has the runner's deadline less 10 %: a 6 s timeout could end
# up to a second late, after the runner cut the run off and kept none of its findings.
NO_CEIL = float("inf")


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer whose body was read. `data` is the parsed JSON, or None if not JSON."""

    status: int
    data: Any
    text: str
    headers: Mapping[str, str]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


# connect() failing with these says healthd is out of descriptors, nothing of the provider.
OUT_OF_FILES = frozenset({errno.EMFILE, errno.ENFILE})


class TransportFailure(Exception):
    """The request got no usable HTTP answer: `kind` is `timeout`, `connect`, `bad_response`
    `too_large` (the body passed `max_bytes`) or `healthd_files` (healthd itself had no
    file descriptor to connect with).

    The message is about the network, never the request: URLs with credentials in their
    query string must not leak into findings, so the URL is left out on purpose.
    """

    def __init__(self, kind: str, detail: str) -> None:
        self.kind = kind
        self.detail = detail
        super().__init__(f"{kind}: {detail}")


async def request_json(
    ctx: ProbeContext,
    method: str,
    url: str,
    *,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    auth: aiohttp.BasicAuth | None = None,
    data: Mapping[str, str] | None = None,
    json_body: Any = None,
    expect_json: bool = True,
    max_bytes: int = MAX_BODY_BYTES,
) -> Answer:
    """One request on the shared session, bounded by the probe's timeout and `max_bytes`.

    Raises TransportFailure for a timeout, a refused or reset connection, a body longer
    than `max_bytes` once decompressed (an endless stream or a gzip bomb must not grow the
    daemon), or (when `expect_json`) a 2xx answer that is not JSON. Error statuses are
    returned, not raised: a 401 is information for the probe, not an accident.
    """
    timeout = aiohttp.ClientTimeout(total=ctx.timeout, ceil_threshold=NO_CEIL)
    try:
        async with ctx.session.request(
            method,
            url,
            params=params,
            headers=headers,
            auth=auth,
            data=data,
            json=json_body,
            timeout=timeout,
            allow_redirects=False,
        ) as resp:
            text = _decode(await _read_body(resp, max_bytes), resp)
            status = resp.status
            resp_headers = resp.headers
    except TimeoutError as exc:
        raise TransportFailure("timeout", f"no answer within {ctx.timeout:g}s") from exc
    except aiohttp.ClientConnectorError as exc:
        if exc.os_error.errno in OUT_OF_FILES:
            raise TransportFailure("healthd_files", "healthd: too many open files") from exc
        raise TransportFailure("connect", _connect_detail(exc)) from exc
    except (aiohttp.ClientError, asyncio.IncompleteReadError, ConnectionError) as exc:
        raise TransportFailure("connect", network_words(exc)) from exc
    parsed: Any = None
    if text:
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
    if expect_json and 200 <= status < 300 and parsed is None:
        raise TransportFailure(
            "bad_response", f"HTTP {status} with a body that is not JSON ({excerpt(text)})"
        )
    return Answer(status=status, data=parsed, text=text, headers=resp_headers)


async def _read_body(resp: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The body, decompressed; stops as soon as it passes `max_bytes`.

    An answer of a stated length within the limit, not compressed, is read in one call (a
    probe's usual answer); any other is read in chunks, counted after decompression, so an
    endless stream or a gzip bomb stops at the limit.
    """
    length = resp.content_length
    if length is not None and length <= max_bytes and not resp.headers.get("Content-Encoding"):
        return await resp.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(_READ_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise TransportFailure(
                "too_large",
                f"HTTP {resp.status} with a body larger than {_size(max_bytes)}, "
                "healthd's limit for one answer; it stopped reading there",
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _decode(body: bytes, resp: aiohttp.ClientResponse) -> str:
    """In the charset the answer names, else (or if Python does not know it) UTF-8."""
    try:
        return body.decode(resp.charset or "utf-8", errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


def _size(n: int) -> str:
    return f"{n / (1 << 20):g} MiB" if n >= 1 << 20 else f"{n / 1024:g} KiB"


# What went wrong on the wire, said as a person would: a finding is read by people, and an
# exception's class name (`ServerDisconnectedError`) is not a sentence. The first row whose
# class the exception is an instance of says it (order matters: subclasses first). Timeouts
# and failed connects (TLS included) are said before, with what they know (the address).
NETWORK_WORDS: tuple[tuple[type[BaseException], str], ...] = (
    (aiohttp.ServerDisconnectedError, "the connection was dropped before an answer came"),
    (aiohttp.ClientPayloadError, "the answer was cut off part-way"),
    (asyncio.IncompleteReadError, "the answer was cut off part-way"),
    (aiohttp.ServerFingerprintMismatch, "the server's certificate is not the one expected"),
    (aiohttp.ClientResponseError, "the answer was not valid HTTP"),
    (aiohttp.InvalidURL, "the address is not a valid URL"),
    (ConnectionResetError, "the connection was reset"),
    (ConnectionRefusedError, "the connection was refused"),
    (aiohttp.ClientOSError, "the connection failed"),
    (ConnectionError, "the connection failed"),
)
NETWORK_FALLBACK = "the request failed on the network"


def network_words(exc: BaseException) -> str:
    """A network failure in plain words (`NETWORK_WORDS`), never the exception's name."""
    for kind, words in NETWORK_WORDS:
        if isinstance(exc, kind):
            return words
    return NETWORK_FALLBACK


def _connect_detail(exc: aiohttp.ClientConnectorError) -> str:
    reason = exc.os_error.strerror if exc.os_error and exc.os_error.strerror else str(exc.os_error)
    return f"cannot connect to {exc.host}:{exc.port}: {reason}"


def excerpt(text: str, limit: int = 60) -> str:
    """`text` on one line, cut to `limit` characters with `…` where it was cut (the mark
    that lets the redaction in `healthd.probing` mask a secret cut short)."""
    flat = " ".join(text.split())
    return flat[:limit] + ("…" if len(flat) > limit else "")


def catalog_finding(
    catalog: Catalog,
    provider: str,
    code: str,
    *,
    check: str,
    status: Status,
    summary: str | None = None,
    provider_code: str | int | None = None,
    count: int | None = None,
    examples: tuple[str, ...] = (),
    network_error: bool = False,
) -> Finding:
    """A Finding whose category and remediation come from the catalogue entry for `code`.

    `code` is looked up first as given (a healthd code such as `bridge.unreachable`), then
    as the provider's own code; an unknown code still yields a Finding, in the `unknown`
    category, so a new provider error shows up rather than disappearing.
    """
    entry = catalog.get(provider, code)
    if entry is None and provider_code is not None:
        entry = catalog.get(provider, str(provider_code))
    return Finding(
        check=check,
        status=status,
        code=code,
        provider_code=None if provider_code is None else str(provider_code),
        category=entry.category if entry else Category.UNKNOWN,
        summary=summary or (entry.title if entry else f"{provider} reported {code}"),
        remediation=(
            entry.fix if entry else "Not in healthd's catalogue; see the provider's documentation."
        ),
        count=count,
        examples=examples,
        network_error=network_error,
    )


# TransportFailure.kind -> (finding code after the provider's prefix, status).
TRANSPORT_CODES = {
    "timeout": ("timeout", Status.UNREACHABLE),
    "connect": ("unreachable", Status.UNREACHABLE),
    "bad_response": ("bad_response", Status.FAILING),
    "too_large": ("response_too_large", Status.FAILING),
}


def transport_finding(
    ctx: ProbeContext,
    probe: type[Probe[Any]],
    failure: TransportFailure,
    *,
    check: str = "reachability",
) -> Finding:
    """The finding for a request that got no usable answer, worded from the probe's traits.

    Codes are `<code prefix>.<TRANSPORT_CODES[kind]>`; each provider's catalogue file
    carries their wording. Timeouts and refused connections are network errors (they feed
    the egress_down rule); a garbled or oversized answer is not. healthd out of file
    descriptors is healthd's finding, `unknown`: it says nothing of the provider.
    """
    if failure.kind == "healthd_files":
        return catalog_finding(
            ctx.catalog,
            "healthd",
            "healthd.out_of_file_descriptors",
            check=check,
            status=Status.UNKNOWN,
        )
    code, status = TRANSPORT_CODES[failure.kind]
    return catalog_finding(
        ctx.catalog,
        probe.provider,
        f"{probe.traits.code_prefix}.{code}",
        check=check,
        status=status,
        summary=f"{probe.traits.display_name}: {failure.detail}",
        network_error=status is Status.UNREACHABLE,
    )


def join_url(base: str, path: str) -> str:
    return base.rstrip("/") + "/" + path.lstrip("/")

"""HTTP/1.1 over a plain socket, for what a proper client refuses to send.

Malformed request lines, bytes that are not UTF-8 in a header, a body that arrives a byte
at a time: aiohttp's client would not send these, so the tests write them by hand.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import yarl

EXCHANGE_SECONDS = 10.0


@dataclass(frozen=True)
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0]

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def address(url: str) -> tuple[str, int]:
    parsed = yarl.URL(url)
    assert parsed.host is not None and parsed.port is not None
    return parsed.host, parsed.port


def request(
    method: str, path: str, headers: dict[str, bytes] | None = None, body: bytes = b""
) -> bytes:
    """One request with `Connection: close`; header values are bytes, sent as they are."""
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: healthd", b"Connection: close"]
    lines += [name.encode() + b": " + value for name, value in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def exchange(url: str, data: bytes) -> RawAnswer:
    """Send `data`, read until the daemon closes the connection, parse the one answer."""
    async with asyncio.timeout(EXCHANGE_SECONDS):
        reader, writer = await asyncio.open_connection(*address(url))
        try:
            writer.write(data)
            await writer.drain()
            raw = await reader.read()
        finally:
            writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawAnswer(int(status_line.split()[1]), headers, body)


def assert_problem(answer: RawAnswer, status: int) -> dict[str, Any]:
    assert answer.status == status, answer
    assert answer.content_type == "application/problem+json", answer
    doc = answer.json
    assert doc["status"] == status and doc["type"] == "about:blank" and doc["detail"]
    return dict(doc)

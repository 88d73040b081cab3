"""RFC 9457 problem documents: the one shape every error of the HTTP listener takes.

Handlers raise `ApiProblem` (or a healthd `NotFoundError`); the listener's error middleware
turns it into `application/problem+json`. Anything the caller sent that is echoed back in a
`detail` goes through `shown()`, so a 4 KB id or a NUL byte comes back short and escaped.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus

from aiohttp import web

from healthd.api.schemas import Problem

PROBLEM_TYPE = "application/problem+json"
ECHO_LIMIT = 100  # characters of caller input repeated in a message


class ApiProblem(Exception):
    """A 4xx (or 503) answer with a message for the caller; raised by handlers."""

    def __init__(
        self, status: int, detail: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})
        super().__init__(detail)


def problem(status: int, detail: str, *, headers: Mapping[str, str] | None = None) -> web.Response:
    body = Problem(type="about:blank", title=reason(status), status=status, detail=detail)
    return web.Response(
        status=status,
        text=body.model_dump_json(),
        content_type=PROBLEM_TYPE,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def shown(value: str, limit: int = ECHO_LIMIT) -> str:
    """Caller input as it appears in a message: quoted, escaped, at most `limit` characters."""
    if len(value) > limit:
        return repr(value[:limit]) + f" (cut; {len(value)} characters)"
    return repr(value)

"""The status page at `/`: a server-rendered shell, its script and its stylesheet.

The shell carries no data. `/` is public, so what it shows without a token must be nothing
more than a form: the script asks for a token once, keeps it in the tab's sessionStorage,
and fetches `/api/v1/...` with it in the Authorization header. A token never travels in a
URL (the form posts, and the script stops that post before it leaves the page).

Assets ship inside the package (`static/`) and are read once at start: no CDN, no build
step, nothing fetched from outside, so the page works on an offline network. The Content
Security Policy allows only this origin's script, style and API calls.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from string import Template

from aiohttp import web

from healthd.api.problems import ApiProblem, shown
from healthd.version import __version__

ASSET_TYPES = {"status.js": "text/javascript", "status.css": "text/css"}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def _static(name: str) -> bytes:
    return (resources.files("healthd.api") / "static" / name).read_bytes()


class StatusPage:
    def __init__(self) -> None:
        self._assets = {name: _static(name) for name in ASSET_TYPES}
        # The assets' digest in their URLs: a new healthd version is never served stale.
        stamp = hashlib.sha256(b"".join(self._assets.values())).hexdigest()[:12]
        template = Template(_static("index.html").decode("utf-8"))
        self._html = template.substitute(version=__version__, stamp=stamp)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.index),
            web.get("/static/{name}", self.asset),
        ]

    async def index(self, request: web.Request) -> web.Response:
        return web.Response(
            text=self._html,
            content_type="text/html",
            charset="utf-8",
            headers={**SECURITY_HEADERS, "Cache-Control": "no-store"},
        )

    async def asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = self._assets.get(name)
        if body is None:
            raise ApiProblem(404, f"no static file {shown(name)}")
        return web.Response(
            body=body,
            content_type=ASSET_TYPES[name],
            charset="utf-8",
            headers={**SECURITY_HEADERS, "Cache-Control": "public, max-age=3600"},
        )

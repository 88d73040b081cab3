"""healthd's HTTP listener: the status API, the status page, health and metrics endpoints.

`app.Api` builds the aiohttp application; `auth` maps bearer tokens to principals,
`views` shapes answers, `problems` shapes errors (RFC 9457), `page` serves the status
page from `static/`, and `openapi` describes all of it at /openapi.json.
"""

from __future__ import annotations

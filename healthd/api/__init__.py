"""healthd's HTTP listener: the status API, the status page, health and metrics endpoints.

`app.Api` builds the aiohttp application; `auth` maps bearer tokens to principals,
`schemas` declares every body as a pydantic model, `views` builds answers from healthd's
objects through those models, `problems` shapes errors (RFC 9457), `silences` is the admin
API for run-time silences, `page` serves the status page from `static/`, and `openapi`
describes all of it at /openapi.json, its body schemas generated from `schemas`.
"""

from __future__ import annotations

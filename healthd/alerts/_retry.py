"""What the notifiers share about an HTTP answer: is it worth retrying, and when."""

from __future__ import annotations

from collections.abc import Mapping


def is_transient(status: int) -> bool:
    """429 (rate limited), 408 and 5xx may pass on a later try; other 4xx will not."""
    return status in (408, 429) or status >= 500


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from a `Retry-After: <delta-seconds>` header, if the receiver sent one.

    The HTTP-date form is ignored: turning it into a delay needs a clock, and the
    outbox's own backoff is a fine fallback.
    """
    value = headers.get("Retry-After") if headers is not None else None
    if value is None:
        return None
    value = value.strip()
    return float(value) if value.isdigit() else None

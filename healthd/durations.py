"""Durations as config writes them: `30s`, `10m`, `1h30m`, `500ms`, `2d`, or seconds as a number.

`Duration` is a pydantic type (an annotated `timedelta`); `parse_duration` is the plain
function behind it. A bad value fails with "invalid duration '10 minutes'", which the
config loader puts after the key path.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
}
_PART = r"(\d+(?:\.\d+)?)(ms|s|m|h|d)"
_WHOLE = re.compile(rf"(?:{_PART})+")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def parse_duration(value: object) -> timedelta:
    """Parse a duration; numbers are seconds. Raises ValueError("invalid duration '...'")."""
    try:
        parsed = _parse(value)
    except OverflowError:  # beyond timedelta's 999,999,999 days, or infinite
        raise ValueError(f"invalid duration {value!r}: too long") from None
    if parsed is None:
        raise ValueError(f"invalid duration {value!r}")
    return parsed


def _parse(value: object) -> timedelta | None:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER.fullmatch(text):
            return timedelta(seconds=float(text))
        if _WHOLE.fullmatch(text):
            return sum(
                (float(n) * _UNITS[unit] for n, unit in re.findall(_PART, text)), timedelta()
            )
    return None


def _validate(value: object) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise PydanticCustomError("duration", "{message}", {"message": str(exc)}) from None


Duration = Annotated[timedelta, BeforeValidator(_validate)]

"""Secrets as a type: resolved from `env:NAME` or `file:/path`, masked everywhere they print.

A `Secret` never shows its value in `repr`, `str`, a pydantic dump or an error message;
the value comes out only through `reveal()`, which code calls at the point where it builds
a request. Config files hold references, never literal secrets, so a literal string is
rejected: the error names the reference form, never the value.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

MASK = "********"


class Secret:
    """A resolved secret value. Equal by value (compared in constant time), masked in print."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    @classmethod
    def resolve(cls, reference: object) -> Secret:
        """Turn `env:NAME` or `file:/path` (or a Secret) into a Secret.

        Raises ValueError naming the variable or file, never a value.
        """
        if isinstance(reference, Secret):
            return reference
        if not isinstance(reference, str):
            raise ValueError("a secret must be a reference: 'env:NAME' or 'file:/path'")
        kind, sep, name = reference.partition(":")
        if sep and kind == "env" and name:
            value = os.environ.get(name)
            if value is None:
                raise ValueError(f"environment variable {name!r} is not set")
            if not value:
                raise ValueError(f"environment variable {name!r} is empty")
            return cls(value)
        if sep and kind == "file" and name:
            try:
                text = Path(name).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise ValueError(f"cannot read secret file {name!r}: {reason}") from None
            value = text.rstrip("\r\n")
            if not value:
                raise ValueError(f"secret file {name!r} is empty")
            return cls(value)
        # Never echo the input: it may be a literal secret pasted into the config.
        raise ValueError(
            "a secret must be a reference 'env:NAME' or 'file:/path', not a literal value"
        )

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            _validate,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda _secret: MASK, when_used="json"
            ),
        )


def _validate(value: object) -> Secret:
    try:
        return Secret.resolve(value)
    except ValueError as exc:
        # A custom error keeps pydantic's message free of the "Value error, " prefix.
        raise PydanticCustomError("secret", "{message}", {"message": str(exc)}) from None

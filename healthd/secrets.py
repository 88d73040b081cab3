"""Secret values: resolved from `env:NAME` / `file:/path` references, masked everywhere else."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

MASK = "********"


class Secret:
    """A secret whose `repr` and `str` are masked; `reveal()` is the only way to the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def resolve(ref: Any) -> Secret:
    """Turn a reference into a Secret. Errors name the variable or file, never a value."""
    if isinstance(ref, Secret):
        return ref
    if not isinstance(ref, str):
        raise ValueError("a secret must be a string reference: env:NAME or file:/path")
    if ref.startswith("env:"):
        name = ref[4:]
        value = os.environ.get(name)
        if not name or value is None:
            raise ValueError(f"environment variable {name!r} is not set")
        return Secret(value)
    if ref.startswith("file:"):
        path = Path(ref[5:])
        try:
            return Secret(path.read_text("utf-8").strip())
        except OSError as exc:
            raise ValueError(f"cannot read secret file {str(path)!r}: {exc.strerror}") from None
    raise ValueError("a secret must be a reference (env:NAME or file:/path), not a literal value")


SecretRef = Annotated[
    Secret, BeforeValidator(resolve), PlainSerializer(lambda s: MASK, return_type=str)
]

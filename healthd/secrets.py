"""Secrets as a type: resolved from `env:NAME` or `file:/path`, masked everywhere they print.

A `Secret` never shows its value in `repr`, `str`, a pydantic dump or an error message;
the value comes out only through `reveal()`, which code calls at the point where it builds
a request. Config files hold references, never literal secrets, so a literal string is
rejected: the error names the reference form, never the value.
"""

from __future__ import annotations

import base64
import bisect
import hmac
import html
import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from pydantic import GetCoreSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

MASK = "********"

#: The largest secret file read: a PEM key or a service-account JSON is a few KiB.
MAX_SECRET_FILE_BYTES = 64 * 1024


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
            # Read a bounded amount: `file:/dev/zero` or a log file named by mistake must
            # get an error, not a process that reads until memory runs out.
            try:
                with Path(name).open("rb") as file:
                    data = file.read(MAX_SECRET_FILE_BYTES + 1)
            except OSError as exc:
                raise ValueError(f"cannot read secret file {name!r}: {exc.strerror}") from None
            if len(data) > MAX_SECRET_FILE_BYTES:
                raise ValueError(
                    f"secret file {name!r} is larger than {MAX_SECRET_FILE_BYTES // 1024} KiB;"
                    " a credential is never that long (is it the right file?)"
                )
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"cannot read secret file {name!r}: not UTF-8 text") from None
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


# --- redaction ------------------------------------------------------------------------------
#
# A provider, a proxy or a bridge may echo back what healthd sent: the request line with the
# bridge's `?password=`, an Authorization header, a form body with a refresh token. Whatever
# text came from outside goes through a Redactor before anyone can read it (findings, logs).

_SHORTEST = 6  # shorter values would mask ordinary words; config refuses such tokens anyway
_FEW = 100  # beginnings a Redactor searches for one by one
# After a value cut short by a trim, only closing marks remain: `…`, `)`, quotes.
_TRIM_TAIL = " )]}\"'.…"
# A parameter whose name ends in one of these holds a credential: password, api_key,
# access_token, client_secret... Each pattern runs only on a text holding one of its words
# (lower-cased), and starts at its keyword, not at every word: most texts cost one scan.
_NAMES = ("password", "passwd", "secret", "token", "key")
_NAME = "(?:" + "|".join(_NAMES) + ")"
_SHAPES = (
    # `password=v` / `password%3Dv` in a query string or form body (v ends at `&` / `%26`).
    (
        _NAMES,
        re.compile(rf"(?i)({_NAME}(?:=|%3D))(?:(?!%26)[^\s&\"'<>#,;)])+"),
        rf"\1{MASK}",
    ),
    # `"client_secret": "v"` in echoed JSON.
    (_NAMES, re.compile(rf'(?i)({_NAME}"\s*:\s*")(?:[^"\\]|\\.)*"'), rf'\1{MASK}"'),
    # `Authorization: Basic v`, `'x-api-key': 'v'`, as a header dump or a repr shows them.
    (
        ("authorization", "api-key"),
        re.compile(
            r"(?i)((?:authorization|api-key)[\"']?\s*[:=]\s*[\"']?)"
            r"((?:basic|bearer|token|digest)\s+)?[^\s,;\"'&<>]+"
        ),
        rf"\1\2{MASK}",
    ),
    # A bare `Bearer v` / `Basic v` whose v looks like a credential, not a word.
    (
        ("bearer", "basic"),
        re.compile(r"(Bearer|Basic)\s+(?=[\w~+/=.\-]*[\d~+/=.\-_])[\w~+/=.\-]{8,}"),
        rf"\1 {MASK}",
    ),
    # `https://user:v@host`.
    (("://",), re.compile(r"(://[^\s/?#@:]*:)[^\s/?#@]+@"), rf"\1{MASK}@"),
)


# Every word some shape needs, each once: a text holding none of them (lower-cased) needs
# no shape. Substring tests of the lower-cased text, in C, rather than one case-blind regex
# alternation: the regex cost about 26 µs per 80 characters, the tests under 2 (a probe run
# redacts half a dozen texts, bench/RESULTS.md "CPU per probe (session 5)").
_SHAPE_WORDS = tuple(dict.fromkeys(w for words, _, _ in _SHAPES for w in words))


def _may_hold_a_shape(text: str) -> bool:
    """Whether `text` holds a word some shape needs. Nearly every text holds none: a few
    substring tests of the lower-cased text say so."""
    lowered = text.lower()
    return any(w in lowered for w in _SHAPE_WORDS)


# Texts no shape changes (after the values were masked, so none holds a known secret):
# catalogue wording and a healthy fleet's summaries repeat run after run. Cleared when full.
_SHAPELESS: set[str] = set()
SHAPELESS_KEPT = 4096


# URL-unreserved characters (RFC 3986), which no form below changes: a value made only of
# them (most generated passwords and tokens) is spelled two ways, raw and base64.
_UNCHANGED_BY_ESCAPING = re.compile(r"[A-Za-z0-9_.~-]*")


def echoed_forms(value: str) -> set[str]:
    """`value` as an echo may spell it: raw, percent- and form-encoded, JSON- and
    HTML-escaped, base64. Built for every probe run (`healthd.probing`), so a value no
    escaping changes skips the escapers: they were most of a Redactor's making."""
    if _UNCHANGED_BY_ESCAPING.fullmatch(value):
        return {value, base64.b64encode(value.encode()).decode()}
    return _spelled_forms(value)


def _spelled_forms(value: str) -> set[str]:
    escaped = json.dumps(value)[1:-1]
    return {
        value,
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
        escaped,
        escaped.replace("/", "\\/"),
        html.escape(value),
        base64.b64encode(value.encode()).decode(),
    }


class Redactor:
    """Masks known secret values (in the forms an echo spells them) and credential-shaped
    text (`password=`, `Authorization:`, `Bearer`, `user:pass@`) with MASK.

    A value cut short by a trim (a snippet of 60 characters ending in `…`) is masked too: it
    is a secret's first characters followed only by closing marks. The values are grouped by
    their first characters, so one pass over a text costs about the same for one secret or
    30,000, even when they all start alike.
    """

    __slots__ = ("_groups",)

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: dict[str, set[str]] = {}
        for s in secrets:
            if len(s) >= _SHORTEST:
                for form in echoed_forms(s):
                    forms.setdefault(form[:_SHORTEST], set()).add(form)
        # A group's lookup structure is built when a text first holds its beginning: a
        # probe run's Redactor nearly never meets one (bench/RESULTS.md, session 6).
        self._groups: dict[str, _Forms | set[str]] = dict(forms)

    @classmethod
    def for_credentials(cls, values: Sequence[str]) -> Redactor:
        """One integration's credentials, plus each ordered pair as HTTP basic auth sends it
        (`base64("sid:token")`): an echoed Authorization header spells neither alone."""
        pairs = [f"{a}:{b}" for i, a in enumerate(values) for j, b in enumerate(values) if i != j]
        return cls([*values, *(base64.b64encode(p.encode()).decode() for p in pairs)])

    def redact(self, text: str) -> str:
        if not text:
            return text
        if self._groups:
            text = self._mask_values(text)
        if text in _SHAPELESS:
            return text
        if _may_hold_a_shape(text):
            lowered = text.lower()
            shaped = text
            for words, pattern, replacement in _SHAPES:
                if any(w in lowered for w in words):
                    shaped = pattern.sub(replacement, shaped)
            if shaped != text:
                return shaped
        if len(_SHAPELESS) >= SHAPELESS_KEPT:
            _SHAPELESS.clear()
        _SHAPELESS.add(text)
        return text

    def leaves_alone(self, text: str) -> bool:
        """True only if `redact` would give `text` back as it is: it holds no secret's
        beginning and no word a shape needs. Texts joined by a NUL are so tested at once (a
        run's findings in one call, where redacting each text cost a probe run a sixth of
        its own CPU); False says only that each text must go through `redact`."""
        if self._groups and next(iter(self._starts(text)), None) is not None:
            return False
        return text in _SHAPELESS or not _may_hold_a_shape(text)

    def _mask_values(self, text: str) -> str:
        parts: list[str] = []
        tail = len(text.rstrip(_TRIM_TAIL))
        kept = 0
        for i in self._starts(text):
            if i < kept:
                continue  # inside a value already masked
            start = text[i : i + _SHORTEST]
            group = self._groups[start]
            if isinstance(group, set):
                group = self._groups[start] = _Forms(group)
            end = group.match_end(text, i, tail)
            if end is not None:
                parts += (text[kept:i], MASK)
                kept = end
        return "".join(parts) + text[kept:] if parts else text

    def _starts(self, text: str) -> Iterable[int]:
        """Every position where some secret form's beginning starts, in order.

        One integration's few dozen beginnings are each searched for (`str.find`, in C);
        the log's tens of thousands are looked up at each position of the text instead.
        """
        if len(self._groups) > _FEW:
            last = len(text) - _SHORTEST
            return (i for i in range(last + 1) if text[i : i + _SHORTEST] in self._groups)
        found: set[int] = set()
        for start in self._groups:
            i = text.find(start)
            while i >= 0:
                found.add(i)
                i = text.find(start, i + 1)
        return sorted(found)


class _Forms:
    """The secret forms that start alike: a set per length for whole ones, a sorted list
    to find the one a cut-short text begins."""

    __slots__ = ("_lengths", "_set", "_sorted")

    def __init__(self, forms: set[str]) -> None:
        self._set = frozenset(forms)
        self._lengths = sorted({len(f) for f in forms}, reverse=True)
        self._sorted = sorted(forms)

    def match_end(self, text: str, start: int, tail: int) -> int | None:
        """Where the secret at `start` ends: a whole form, or a form's beginning that runs
        up to the text's closing marks (`tail`). None for a mere shared beginning."""
        for length in self._lengths:
            if text[start : start + length] in self._set:
                return start + length
        cut = text[start:tail]
        if len(cut) < _SHORTEST:
            return None
        at = bisect.bisect_left(self._sorted, cut)
        return tail if at < len(self._sorted) and self._sorted[at].startswith(cut) else None

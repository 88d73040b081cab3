"""What a secret reference is, and what a literal secret looks like, for the config lints.

healthd's config names secrets as `env:NAME` or `file:/absolute/path`. Any value under a
secret-bearing key must be such a reference, and no value anywhere may look like a real
credential (provider key formats, long random strings).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

SECRET_REF = re.compile(r"^(?:env:[A-Z_][A-Z0-9_]*|file:/[^\s]+)$")

#: Keys whose values are secrets wherever they appear in a healthd config.
SECRET_KEYS = frozenset(
    {"routing_key", "token", "password", "auth_token", "api_key", "client_secret", "refresh_token"}
)

_LOOKS_SECRET = [
    re.compile(r"\bAC[0-9a-f]{32}\b"),  # Twilio account SID
    re.compile(r"\bSK[0-9a-f]{32}\b"),  # Twilio API key SID
    re.compile(r"\bSG\.[\w-]{16,}\.[\w-]{16,}"),  # SendGrid API key
    re.compile(r"\bya29\.[\w-]{20,}"),  # Google OAuth access token
    re.compile(r"\b1//[\w-]{20,}"),  # Google OAuth refresh token
    re.compile(r"\b[0-9a-f]{32}\b"),  # PagerDuty integration keys and other hex secrets
    re.compile(r"\b[A-Za-z0-9+/_-]{40,}={0,2}"),  # long base64-ish blobs
]


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (key path, scalar value) in a parsed YAML document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}[{index}]")
    else:
        yield path, node


def _last_key(path: str) -> str:
    return re.sub(r"\[\d+\]$", "", path).rsplit(".", 1)[-1]


def secret_problems(document: Any) -> list[str]:
    """Why `document` (a parsed healthd config) might hold a literal secret; empty if clean."""
    problems = []
    for path, value in walk(document):
        secret_place = _last_key(path) in SECRET_KEYS or ".credentials." in f".{path}."
        if secret_place and not (isinstance(value, str) and SECRET_REF.match(value)):
            problems.append(f"{path}: a secret must be env:NAME or file:/path, not {value!r}")
        elif isinstance(value, str) and not SECRET_REF.match(value):
            if any(pattern.search(value) for pattern in _LOOKS_SECRET):
                problems.append(f"{path}: {value[:8]}... looks like a literal secret")
    return problems


def secret_refs(document: Any) -> set[str]:
    """Every env:/file: reference in a parsed config, the store URL's `?password=` too."""
    refs = set()
    for _, value in walk(document):
        if isinstance(value, str) and SECRET_REF.match(value):
            refs.add(value)
        elif isinstance(value, str) and value.startswith(("postgresql://", "postgres://")):
            refs.update(parse_qs(urlsplit(value).query).get("password", []))
    return refs

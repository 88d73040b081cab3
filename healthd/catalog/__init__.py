"""The error-code catalogue: what each provider code means, how to fix it, whose problem it is.

The catalogue is data (`<provider>.yaml` beside this file), so support staff can correct a
remediation without touching code. Each file looks like:

    provider: twilio
    codes:
      "30007":
        title: Message filtered by the carrier
        meaning: ...
        fix: ...
        category: content          # recipient|content|sender_config|account|provider|unknown
        retryable: false
        counts_against_health: false   # optional; defaults to the category's rule

Codes are strings: a provider's numeric code (`"21610"`), an OAuth error (`invalid_grant`)
or a healthd finding code (`bridge.unreachable`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from healthd.errors import CodeNotFound
from healthd.model import Category


@dataclass(frozen=True, kw_only=True, slots=True)
class CatalogEntry:
    provider: str
    code: str
    title: str
    meaning: str
    fix: str
    category: Category
    retryable: bool
    counts_against_health: bool


class Catalog:
    """Lookup by (provider, code). Built once at start; read-only afterwards."""

    def __init__(self, entries: dict[tuple[str, str], CatalogEntry]) -> None:
        self._entries = entries

    def get(self, provider: str, code: str | int) -> CatalogEntry | None:
        return self._entries.get((provider, str(code)))

    def lookup(self, provider: str, code: str | int) -> CatalogEntry:
        entry = self.get(provider, code)
        if entry is None:
            raise CodeNotFound(provider, str(code))
        return entry

    def providers(self) -> list[str]:
        return sorted({p for p, _ in self._entries})

    def outcome_category(
        self, provider: str, code: str | None, default: Category | None
    ) -> Category | None:
        """Whose problem a message's outcome is: the code's category, else `default` (a
        failure without a code, or with one the catalogue does not know: UNKNOWN; a
        success: None). Callbacks and polling classify a message alike through this."""
        entry = None if code is None else self.get(provider, code)
        return entry.category if entry is not None else default

    def __iter__(self) -> Iterator[CatalogEntry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)


def parse(document: dict[str, Any], source: str) -> dict[tuple[str, str], CatalogEntry]:
    """Turn one YAML document into entries; a malformed entry names its file and code."""
    provider = document.get("provider")
    codes = document.get("codes")
    if not isinstance(provider, str) or not isinstance(codes, dict):
        raise ValueError(f"{source}: needs 'provider' (a string) and 'codes' (a mapping)")
    entries: dict[tuple[str, str], CatalogEntry] = {}
    for code, raw in codes.items():
        try:
            category = Category(raw["category"])
            entries[(provider, str(code))] = CatalogEntry(
                provider=provider,
                code=str(code),
                title=str(raw["title"]),
                meaning=str(raw["meaning"]).strip(),
                fix=str(raw["fix"]).strip(),
                category=category,
                retryable=bool(raw.get("retryable", False)),
                counts_against_health=bool(
                    raw.get("counts_against_health", category.counts_against_health)
                ),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"{source}: code {code!r}: {exc}") from exc
    return entries


def load() -> Catalog:
    """Load every `*.yaml` shipped in this package."""
    entries: dict[tuple[str, str], CatalogEntry] = {}
    for item in sorted(resources.files(__name__).iterdir(), key=lambda p: p.name):
        if item.name.endswith(".yaml"):
            entries.update(parse(yaml.safe_load(item.read_text("utf-8")), item.name))
    return Catalog(entries)

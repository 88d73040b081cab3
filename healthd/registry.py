"""The table of probes: provider name -> Probe class, read from the `healthd.probes` entry points.

The core never imports a provider by name. A new provider is a module in `probes/` plus
one line in pyproject.toml; nothing in `healthd/` changes.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import Any

from healthd.errors import UnknownProviderError
from healthd.interfaces import Probe

GROUP = "healthd.probes"


@cache
def probes() -> dict[str, type[Probe[Any]]]:
    table: dict[str, type[Probe[Any]]] = {}
    for ep in entry_points(group=GROUP):
        cls = ep.load()
        if getattr(cls, "provider", None) != ep.name:
            raise TypeError(
                f"entry point {ep.name!r} loads {cls!r} whose provider is not {ep.name!r}"
            )
        table[ep.name] = cls
    return table


def probe_class(provider: str) -> type[Probe[Any]]:
    table = probes()
    try:
        return table[provider]
    except KeyError:
        raise UnknownProviderError(provider, list(table)) from None

"""Run-time silences: maintenance windows set through the admin API instead of the config.

A silence is a `MaintenanceWindow` (same selectors, same meaning: it holds back triggers,
never resolves) plus who set it and when. The set lives in the store's meta under the key
`silences`, written through on every change, so it survives a restart and a second
daemon on the same store sees it after its next start.

Expiry is by the injected clock: a silence whose `end` has passed is no longer active
(`active(now)`), and the next change or load drops it from the store. When a silence ends
while its condition still holds, the rules trigger once on the next evaluation: they are
level-triggered, and nothing was opened while silenced.

Names are unique among the silences in force: adding a name that exists is a conflict,
not an overwrite, so two operators cannot silently replace each other's window.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from pydantic import ValidationError

from healthd.alerts.settings import MaintenanceWindow
from healthd.clock import Clock
from healthd.errors import HealthdError, NotFoundError
from healthd.interfaces import Store

log = structlog.get_logger("healthd.alerts.silences")

META_KEY = "silences"


class SilenceExists(HealthdError):
    """A silence with this name is already in force."""


class SilenceNotFound(NotFoundError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no silence named {name!r}")


@dataclass(frozen=True, slots=True)
class Silence:
    window: MaintenanceWindow
    created_by: str
    created_at: datetime

    @property
    def name(self) -> str:
        return self.window.name

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.window.model_dump(mode="json"),
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Silence:
        fields = dict(data)
        created_by = str(fields.pop("created_by"))
        created_at = datetime.fromisoformat(str(fields.pop("created_at")))
        return cls(MaintenanceWindow.model_validate(fields), created_by, created_at)


class Silences:
    """The silences in force, mirrored in the store. Changes are serialised by a lock."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self.clock = clock
        self._lock = asyncio.Lock()
        self._items: dict[str, Silence] = {}

    async def load(self) -> None:
        """Read the stored silences; a row that no longer validates is dropped with a log."""
        raw = await self._store.get_meta(META_KEY) or []
        items: dict[str, Silence] = {}
        for data in raw:
            try:
                silence = Silence.from_dict(data)
            except (ValidationError, KeyError, TypeError, ValueError):
                log.error("silence_unreadable", name=str(data.get("name", "?"))[:100])
                continue
            items[silence.name] = silence
        self._items = items
        async with self._lock:
            await self._save()

    def active(self, now: datetime | None = None) -> tuple[MaintenanceWindow, ...]:
        """Windows not yet ended at `now` (default: the clock). Future ones are included;
        `MaintenanceWindow.silences` checks the start itself."""
        at = now or self.clock.now()
        return tuple(s.window for s in self._items.values() if s.window.end > at)

    def list(self) -> list[Silence]:
        now = self.clock.now()
        return sorted(
            (s for s in self._items.values() if s.window.end > now), key=lambda s: s.window.end
        )

    async def add(self, window: MaintenanceWindow, created_by: str) -> Silence:
        async with self._lock:
            now = self.clock.now()
            current = self._items.get(window.name)
            if current is not None and current.window.end > now:
                raise SilenceExists(f"a silence named {window.name!r} is already in force")
            silence = Silence(window, created_by, now)
            self._items[window.name] = silence
            await self._save()
        log.warning(
            "silence_added",
            name=window.name,
            end=window.end.isoformat(),
            rules=window.rules,
            created_by=created_by,
        )
        return silence

    async def remove(self, name: str, removed_by: str) -> None:
        async with self._lock:
            current = self._items.get(name)
            if current is None or current.window.end <= self.clock.now():
                raise SilenceNotFound(name)
            del self._items[name]
            await self._save()
        log.warning("silence_removed", name=name, removed_by=removed_by)

    async def _save(self) -> None:
        """Write the silences in force; expired ones are dropped here. Caller holds the lock."""
        now = self.clock.now()
        self._items = {n: s for n, s in self._items.items() if s.window.end > now}
        await self._store.set_meta(META_KEY, _dump(list(self._items.values())))


def _dump(items: Sequence[Silence]) -> list[dict[str, Any]]:
    return [s.to_dict() for s in items]

"""A day's script: which simulator scenario each target plays at each moment.

A script is an ordered list of `Play`s (a scenario for some targets over a window of the
day); at any moment a target plays the last `Play` that covers it, or `ok`. `Director`
pushes only the changes to the simulator before each sweep, so one sweep sees one world.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from healthd.sim.client import SimClient
from tests.scenarios.fleet import Member


@dataclass(frozen=True, slots=True)
class Window:
    """[start, end) as offsets from the start of the simulated day."""

    start: timedelta
    end: timedelta

    def covers(self, at: timedelta) -> bool:
        return self.start <= at < self.end

    def near(self, at: timedelta, margin: timedelta) -> bool:
        return self.start - margin <= at < self.end + margin


def hours(start: float, end: float) -> Window:
    return Window(timedelta(hours=start), timedelta(hours=end))


@dataclass(frozen=True, slots=True)
class Play:
    scenario: str
    members: tuple[Member, ...]
    window: Window
    params: dict[str, Any] = field(default_factory=dict)


Key = tuple[str, str]  # (simulator provider, target)


class Director:
    """Applies a script to the simulator, one moment at a time."""

    def __init__(self, client: SimClient, members: Sequence[Member], plays: Sequence[Play]):
        self._client = client
        # A target only a play names (a status page) goes back to `ok` after it too.
        played = (m for p in plays for m in p.members)
        self._keys = sorted({(m.provider, m.target) for m in (*members, *played)})
        self._plays = list(plays)
        self._current: dict[Key, tuple[str, dict[str, Any]]] = {}

    def wanted(self, at: timedelta) -> dict[Key, tuple[str, dict[str, Any]]]:
        out: dict[Key, tuple[str, dict[str, Any]]] = {k: ("ok", {}) for k in self._keys}
        for play in self._plays:
            if play.window.covers(at):
                for m in play.members:
                    out[(m.provider, m.target)] = (play.scenario, play.params)
        return out

    def apply(self, at: timedelta) -> None:
        for key, (scenario, params) in self.wanted(at).items():
            if self._current.get(key) != (scenario, params):
                self._client.set_scenario(key[0], scenario, target=key[1], **params)
                self._current[key] = (scenario, params)


def transient_timeouts(
    rng: random.Random,
    members: Sequence[Member],
    *,
    day: timedelta,
    interval: timedelta,
    count: int,
    keep_clear: Sequence[tuple[Window, Sequence[Member]]],
) -> list[Play]:
    """`count` blips of one or two probe intervals where a member's provider hangs.

    Blips stay an hour clear of the windows in `keep_clear` for the members listed there,
    so an incident's detection delay is measured on the incident alone.
    """
    margin = timedelta(hours=1)
    slots = int(day / interval)
    plays: list[Play] = []
    while len(plays) < count:
        member = rng.choice(members)
        start = interval * rng.randrange(1, slots - 2)
        length = interval * rng.choice((1, 2))
        if any(member in ms and w.near(start, margin) for w, ms in keep_clear):
            continue
        # Blips of one member never run together: three misses in a row are a failure.
        gap = interval * 3
        if any(member in p.members and p.window.near(start, gap) for p in plays):
            continue
        plays.append(Play("hanging", (member,), Window(start, start + length)))
    return plays

"""The event loop healthd's processes run on: uvloop where it is installed, else asyncio's.

uvloop (libuv, in C) schedules callbacks and drives sockets with less interpreter work per
event; at 10,000 integrations it took about a tenth off the CPU per probe (bench/RESULTS.md).
It is a dependency on the platforms it supports; elsewhere asyncio's own loop is used, and
healthd behaves the same on both (the test suite runs in-process daemons on asyncio's loop
and `healthd run` subprocesses on uvloop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:  # a platform uvloop does not support (Windows)
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the loop `loop_factory` picks."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)

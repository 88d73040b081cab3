"""Garbage-collector settings for a long-running daemon with a large, static heap.

Everything loaded at start-up (config, integrations, catalogue, stored state) lives until
exit, and CPython's collector would walk all of it again on every full collection; a probe
run allocates enough (tasks, futures, results) to trigger young collections hundreds of
times a second at 10,000 integrations. Measured in bench/RESULTS.md: about a quarter of the
runner's CPU per probe went to collections. `gc.freeze()` moves the start-up heap out of
the collector's view, and a larger first-generation threshold makes the collections that
remain less frequent; reference cycles are still collected.
"""

from __future__ import annotations

import gc

# Allocations before a young collection (CPython's default is 700), then the usual 10/10.
THRESHOLDS = (10_000, 10, 10)


def settle_startup_heap() -> None:
    """Call once start-up is done and before probing begins."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)

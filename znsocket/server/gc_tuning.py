"""Garbage-collector settings for a long-running server process.

A 1,000-command pipeline allocates some 15,000 containers. With CPython's default
thresholds (700 / 10 / 10) that runs the young collection about twenty times per
pipeline and, as the process holds more objects (the in-memory store, the gateway's
indexes), an occasional full collection of everything. The settings below cut the
server's CPU per pipeline by about half (figures in ``bench/znsocket.md``). Objects alive
at start-up (modules, the app) are frozen out of collection.
"""

from __future__ import annotations

import gc

__all__ = ["SERVER_GC_THRESHOLDS", "tune_gc_for_serving"]

#: young-generation size and the two promotion ratios (CPython's default: 700, 10, 10)
SERVER_GC_THRESHOLDS = (10_000, 20, 20)


def tune_gc_for_serving() -> None:
    """Freeze the objects alive now and collect less often; call once, before serving.

    The cycle collector stays on: reference cycles are still freed, only in larger steps.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVER_GC_THRESHOLDS)

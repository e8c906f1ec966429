"""Turns for other clients inside long loops of the gateway's own code.

The gateway serves every client from eventlet green threads, which switch only when one
blocks. A loop over data that is always ready never blocks: the batches of a long
TStorage stream (the first read of a large series, series discovery) arrive faster than
they are decoded, so the socket read returns at once and the loop would keep every other
client, and the websocket keep-alive pings, waiting until it ends. Such loops call
:func:`give_way` once per batch (``bench/code_choices.md``, "Turns between streamed
batches", measures what it spares the other clients).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


def give_way() -> None:
    """Let every other ready green thread run once, then go on.

    ``time.sleep(0)`` is eventlet's yield once the process is monkey-patched (``gateway
    run``). In a process that is not (``gateway index build``, ``import``/``export``),
    nothing is done: other OS threads get the interpreter at its switch interval anyway,
    and a real ``sleep(0)`` only gives the CPU away (tens of microseconds on an idle
    machine, milliseconds on a loaded one, once per batch: ``bench/scale.md``, "The
    one-time build").
    """
    eventlet = sys.modules.get("eventlet")
    if eventlet is not None and eventlet.patcher.is_monkey_patched("time"):
        time.sleep(0)


def off_hub(fn: Callable[[], None]) -> None:
    """Run ``fn``, which blocks its thread (an fsync), in a real OS thread when eventlet
    runs the process, so that the other clients are served meanwhile; else just call it."""
    eventlet = sys.modules.get("eventlet")
    if eventlet is not None and eventlet.patcher.is_monkey_patched("thread"):
        from eventlet import tpool

        tpool.execute(fn)
    else:
        fn()

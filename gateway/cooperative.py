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

import time


def give_way() -> None:
    """Let every other ready green thread run once, then go on.

    ``time.sleep(0)`` is eventlet's yield once the process is monkey-patched (``gateway
    run``); in a process that is not (``gateway import``/``export``), it only lets other
    OS threads have the interpreter for a moment.
    """
    time.sleep(0)

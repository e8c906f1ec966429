"""Letting other clients run between the batches of a long read.

``gateway run`` serves every client from green threads (eventlet): a streamed build or
discovery must hand over between batches, or the other clients (and the websocket
keep-alive pings) wait for all of it. Anywhere else (``gateway index build``, an
application embedding the storage with real threads) nothing is waiting for such a hand
over (real threads take turns at the interpreter's switch interval), and a real
``sleep(0)`` only gives the CPU away: tens of microseconds each time on an idle machine,
milliseconds on a loaded one.
"""

from __future__ import annotations

import sys
import time


def let_others_run() -> None:
    """Yield to the other green threads when the process runs on eventlet's."""
    eventlet = sys.modules.get("eventlet")
    if eventlet is not None and eventlet.patcher.is_monkey_patched("time"):
        time.sleep(0)  # eventlet's: switches to the other green threads

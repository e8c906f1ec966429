"""Real OS threading primitives, also inside a process that eventlet has monkey-patched.

The embedded server runs its own event loop and worker threads next to an eventlet hub
(the gateway). Green locks and green threads would park on that hub, so everything the
server uses for threads comes from the unpatched ``threading`` module.
"""

from __future__ import annotations

import sys
import threading
from types import ModuleType


def eventlet_patched() -> bool:
    """Whether eventlet has monkey-patched threads in this process."""
    patcher = sys.modules.get("eventlet.patcher")
    if patcher is None:
        return False
    return bool(patcher.is_monkey_patched("thread"))


def real_threading() -> ModuleType:
    """The ``threading`` module as it was before any monkey-patching."""
    if eventlet_patched():
        patcher = sys.modules["eventlet.patcher"]
        return patcher.original("threading")
    return threading

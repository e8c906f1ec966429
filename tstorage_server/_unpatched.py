"""Unpatched threads, sockets and selectors, also in a process eventlet has monkey-patched.

The embedded server runs its own event loop and worker threads next to an eventlet hub
(the gateway). Green locks, green threads and green selectors would park on that hub, so
everything the server uses for threads, its listening socket and its event loop's selector
comes from the unpatched modules.
"""

from __future__ import annotations

import math
import selectors
import socket
import sys
import threading
from types import ModuleType
from typing import Any


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


def real_socket_module() -> ModuleType:
    """The unpatched ``socket`` module."""
    if eventlet_patched():
        return sys.modules["eventlet.patcher"].original("socket")
    return socket


def real_epoll_selector() -> selectors.BaseSelector:
    """An epoll selector on the unpatched ``select`` module.

    eventlet replaces ``select`` with a green module without epoll, and the patched
    ``selectors`` module then only offers a select() based selector that blocks on the
    hub. The event loop of the embedded server needs a real one.
    """
    real_select: Any = sys.modules["eventlet.patcher"].original("select")
    poll_like: Any = selectors._PollLikeSelector

    class RealEpollSelector(poll_like):
        _selector_cls = real_select.epoll
        _EVENT_READ = real_select.EPOLLIN
        _EVENT_WRITE = real_select.EPOLLOUT

        def fileno(self) -> int:
            return int(self._selector.fileno())

        def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
            if timeout is None:
                wait = -1.0
            else:
                wait = 0.0 if timeout <= 0 else math.ceil(timeout * 1e3) * 1e-3
            try:
                fired = self._selector.poll(wait, max(len(self._fd_to_key), 1))
            except InterruptedError:
                return []
            ready = []
            for fd, mask in fired:
                key = self._fd_to_key.get(fd)
                if key is None:
                    continue
                events = 0
                if mask & ~real_select.EPOLLIN:
                    events |= selectors.EVENT_WRITE
                if mask & ~real_select.EPOLLOUT:
                    events |= selectors.EVENT_READ
                ready.append((key, events & key.events))
            return ready

        def close(self) -> None:
            self._selector.close()
            super().close()

    return RealEpollSelector()

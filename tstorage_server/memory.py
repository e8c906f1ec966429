"""Giving memory that clients made the server hold back to the operating system.

Request and response buffers are large (megabytes) and short-lived. The C allocator keeps
what Python frees for reuse, and glibc in particular raises its mmap threshold after the
first large blocks are freed, so later ones come from heaps it does not shrink: without a
trim, memory one burst of clients made the server hold stays with the process after they
left. :class:`Trimmer` asks glibc (``malloc_trim``) to return free pages once enough bytes
were let go and more than a reserve is free (at most once a second, from a worker thread
so the event loop never waits for it), and :func:`configure_allocator` keeps every thread
on the heap it can trim.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("tstorage_server")

#: bytes connections must have let go before a trim is worth considering
TRIM_AFTER_BYTES = 16 << 20
#: free heap memory kept for reuse: a trim is worth its cost only above this (memory
#: trimmed is faulted in again when it is reused)
KEEP_FREE_BYTES = 64 << 20
#: least seconds between two trims
TRIM_EVERY_S = 1.0


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        ("arena", ctypes.c_size_t),
        ("ordblks", ctypes.c_size_t),
        ("smblks", ctypes.c_size_t),
        ("hblks", ctypes.c_size_t),
        ("hblkhd", ctypes.c_size_t),
        ("usmblks", ctypes.c_size_t),
        ("fsmblks", ctypes.c_size_t),
        ("uordblks", ctypes.c_size_t),
        ("fordblks", ctypes.c_size_t),  # free bytes in the heaps
        ("keepcost", ctypes.c_size_t),
    ]


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
    except (OSError, AttributeError):  # another C library
        return None
    # glibc before 2.33 has no mallinfo2: then trim whenever enough was let go
    with contextlib.suppress(AttributeError):
        libc.mallinfo2.restype = _MallInfo2
    return libc


_LIBC = _glibc()


def trim_heap(keep_free: int = KEEP_FREE_BYTES) -> bool:
    """Return the heap's free memory to the system if it holds more than ``keep_free``
    bytes of it (blocking: call it from a worker thread). True if it trimmed."""
    if _LIBC is None:
        return False
    if hasattr(_LIBC, "mallinfo2") and _LIBC.mallinfo2().fordblks <= keep_free:
        return False
    _LIBC.malloc_trim(0)
    return True


_M_ARENA_MAX = -8  # glibc mallopt() parameter


def configure_allocator() -> bool:
    """Let every thread allocate from glibc's main heap; False where that is not glibc.

    Worker threads otherwise get heaps of their own, and ``malloc_trim`` cannot return
    the free memory at the top of those: megabytes per worker would stay with the process.
    The setting is process-wide and applies to threads that allocate for the first time
    after it (the server's workers), so it works best in a process of its own.
    """
    if _LIBC is None:
        return False
    mallopt = _LIBC.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, 1))


class Trimmer:
    """Trims the C heap once connections let go of enough bytes since the last trim
    and the heap keeps more free memory than :data:`KEEP_FREE_BYTES`.

    Args:
        run: runs a blocking function off the event loop (``WorkerPool.run``).
        after_bytes: bytes let go between two trims.
        every_s: least seconds between two trims.
    """

    def __init__(
        self,
        run: Callable[..., Awaitable[Any]],
        after_bytes: int = TRIM_AFTER_BYTES,
        every_s: float = TRIM_EVERY_S,
    ) -> None:
        self._run = run
        self._after = after_bytes
        self._every = every_s
        self._last = -every_s
        self._freed = 0
        self._task: asyncio.Task[None] | None = None

    def freed(self, nbytes: int) -> None:
        """Buffers of about ``nbytes`` were let go; trim soon if enough were (event loop)."""
        self._freed += nbytes
        if _LIBC is not None and self._task is None and self._freed >= self._after:
            self._task = asyncio.get_running_loop().create_task(self._trim())

    async def _trim(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            # What connections let go meanwhile is trimmed by the next round.
            while self._freed >= self._after:
                await asyncio.sleep(self._last + self._every - loop.time())
                self._freed = 0
                self._last = loop.time()
                await self._run(trim_heap)
        except Exception:  # a failed trim only means memory stays with the process
            log.debug("malloc_trim failed", exc_info=True)
        finally:
            self._task = None

    def close(self) -> None:
        """Cancel a pending trim (the workers are stopping)."""
        if self._task is not None:
            self._task.cancel()

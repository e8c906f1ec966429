"""A small pool of OS threads that runs blocking store work for an asyncio loop.

Not ``loop.run_in_executor`` with a ``ThreadPoolExecutor``: a job here is one queue put
and one ``call_soon_threadsafe``, without a ``concurrent.futures.Future`` (and its
condition variable) chained to an asyncio one, which makes every store call cheaper
(``bench/code_choices.md``, "Worker pool"); and a failed job's traceback is cleared here,
so that no request's records stay alive through a logged error.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import traceback
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, TypeVar

T = TypeVar("T")
_STOP = object()


class WorkerPool:
    """``await pool.run(fn, *args)`` runs ``fn(*args)`` in one of ``size`` threads."""

    def __init__(self, size: int = 8, name: str = "tstorage-worker") -> None:
        self._jobs: SimpleQueue[Any] = SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(size)
        ]
        for t in self._threads:
            t.start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is _STOP:
                return
            _do(*job)
            # An idle thread must not keep its last job (a whole request's records) alive.
            del job

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in a worker thread and return its result (or raise its error)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((loop, future, fn, args))
        try:
            return await future
        finally:
            # The future holds fn's error, whose traceback holds this frame: break the cycle.
            del future

    def close(self) -> None:
        """Let the threads finish their current job and end."""
        for _ in self._threads:
            self._jobs.put(_STOP)


def _do(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], fn: Callable[..., Any], args: Any
) -> None:
    try:
        result = fn(*args)
    except BaseException as exc:  # handed to the awaiting task
        # Its traceback keeps the frames it passed, and their locals (a request's records,
        # the future that will hold the error: a cycle) with them; the lines stay for logs.
        traceback.clear_frames(exc.__traceback__)
        del fn, args
        with contextlib.suppress(RuntimeError):  # loop already closed
            loop.call_soon_threadsafe(_set_exception, future, exc)
        del future
    else:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_set_result, future, result)


def _set_result(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)

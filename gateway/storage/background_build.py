"""The first streamed build of a box's summaries, run in the background.

A read (or write) of a series with no usable summaries starts the build, or joins the one
already running, and waits for it at most ``[tstorage] build_wait`` seconds. A build that
takes longer goes on by itself (its progress is logged every few seconds: records read and
rate) and the request gets :class:`~gateway.errors.IndexBuilding`: nothing was read, a
write was not stored, and no answer is ever computed from part of a series. Commands of
``gateway`` itself (``gateway index build``, transfers) wait for the whole build.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from gateway.errors import IndexBuilding

__all__ = ["Build", "BuildProgress"]

log = logging.getLogger("gateway.index")


class BuildProgress(Protocol):
    """How far a build went (kept by the build's progress log)."""

    started: float
    records: int

    def what(self) -> str:
        """The series being built, for messages."""
        ...


class Build:
    """One build running in its own thread; any number of requests join it.

    Args:
        progress: the build's progress (records read so far, when it started).
    """

    def __init__(self, progress: BuildProgress) -> None:
        self.progress = progress
        self.done = threading.Event()
        self.error: BaseException | None = None

    def start(self, work: Callable[[], None], finished: Callable[[], None]) -> None:
        """Run ``work`` in a new thread, then ``finished`` (even when ``work`` failed)."""

        def run() -> None:
            try:
                work()
            except BaseException as exc:  # handed to every request that joined
                self.error = exc
                log.warning("building summaries of %s failed: %s", self.progress.what(), exc)
            finally:
                finished()
                self.done.set()

        threading.Thread(target=run, name="gateway-index-build", daemon=True).start()

    def join(self, wait: float | None) -> None:
        """Wait for the build, at most ``wait`` seconds (``None``: until it ends).

        Raises:
            IndexBuilding: it is still running after ``wait`` seconds.
            Exception: what the build raised (e.g. ``TStorageUnavailable``); the next
                request starts a new build.
        """
        if not self.done.wait(wait):
            p = self.progress
            took = time.monotonic() - p.started
            rate = p.records / max(took, 1e-9)
            raise IndexBuilding(
                f"the summaries of series {p.what()} are being built ({p.records:,} records "
                f"read in {took:.0f} s, {rate:,.0f}/s); nothing was read or stored: retry "
                "when the build is over (its progress is in the gateway's log), or build "
                "ahead with `gateway index build`"
            )
        if self.error is not None:
            raise self.error

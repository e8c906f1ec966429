"""Run the TStorage server inside another Python process, on its own OS thread.

The gateway (python-socketio under eventlet) embeds the server. Its event loop and worker
threads must be real OS threads with a real selector, or they would share the eventlet
hub's single thread; :mod:`tstorage_server._unpatched` supplies the unpatched modules.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from tstorage_server import runfile
from tstorage_server._unpatched import eventlet_patched, real_epoll_selector, real_threading
from tstorage_server.limits import Limits
from tstorage_server.server import TStorageServer
from tstorage_server.store import DEFAULT_SYNC_INTERVAL_S, LmdbStore, Store, SyncMode


def _new_event_loop() -> asyncio.AbstractEventLoop:
    if eventlet_patched():
        return asyncio.SelectorEventLoop(real_epoll_selector())
    return asyncio.new_event_loop()


@dataclass
class _Outcome:
    """Start-up result handed from the server thread (a real-thread Event, not a Future:
    a Future's condition variable is green in a patched process)."""

    event: Any
    error: BaseException | None = None


class EmbeddedServer:
    """A durable TStorage server running in this process.

    Example::

        with EmbeddedServer("/var/lib/tstorage") as server:
            channel = Channel(server.host, server.port, payload_type)

    Args:
        data_dir: directory of the durable store (created if missing).
        host: address to bind.
        port: TCP port; 0 lets the OS choose (read :attr:`port` after :meth:`start`).
        store: serve this store instead of opening ``data_dir`` (e.g. a ``MemoryStore``).
        workers: threads for store work.
        sync: durability of ``data_dir``: ``"commit"`` or ``"interval"``
            (:mod:`tstorage_server.store.lmdb` says what each survives).
        sync_interval: seconds between fsyncs with ``sync="interval"`` (at most 1).
        limits: what clients may make the server hold (None: the defaults).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        store: Store | None = None,
        workers: int = 8,
        sync: SyncMode = "commit",
        sync_interval: float = DEFAULT_SYNC_INTERVAL_S,
        limits: Limits | None = None,
    ) -> None:
        if data_dir is None and store is None:
            raise ValueError("give a data_dir or a store")
        self.data_dir = data_dir
        self.host = host
        self.port = port
        self._store = store
        self._owns_store = store is None
        self._workers = workers
        self._sync = sync
        self._sync_interval = sync_interval
        self._limits = limits
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: TStorageServer | None = None
        self._thread: Any = None

    def start(self) -> EmbeddedServer:
        """Open the store and start serving; returns once the port accepts connections.

        Raises:
            RuntimeError: already started.
            OSError: the address cannot be bound.
            tstorage_server.store.DataDirInUse: another server uses ``data_dir``.
        """
        if self._thread is not None:
            raise RuntimeError("server already started")
        if self._store is None:
            assert self.data_dir is not None
            self._store = LmdbStore(
                self.data_dir, sync=self._sync, sync_interval=self._sync_interval
            )
        threading = real_threading()
        ready = _Outcome(threading.Event())
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="tstorage-server", daemon=True
        )
        self._thread.start()
        ready.event.wait()
        if ready.error is not None:
            self._thread.join()
            self._thread = None
            self._close_store()
            raise ready.error
        return self

    def _run(self, ready: _Outcome) -> None:
        loop = _new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        assert self._store is not None
        server = TStorageServer(
            self._store, self.host, self.port, workers=self._workers, limits=self._limits
        )
        try:
            loop.run_until_complete(server.start())
        except BaseException as exc:
            loop.close()
            ready.error = exc
            ready.event.set()
            return
        self._server = server
        self.port = server.port
        if self.data_dir is not None and self._owns_store:
            runfile.write(self.data_dir, self.host, self.port)
        ready.event.set()
        try:
            loop.run_forever()
        finally:
            if self.data_dir is not None and self._owns_store:
                runfile.remove(self.data_dir)
            loop.run_until_complete(server.stop())
            # Let transports finish closing before the loop goes away.
            loop.run_until_complete(asyncio.sleep(0.01))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self) -> None:
        """Stop serving, close every connection and the store. Safe to call twice."""
        if self._thread is None:
            return
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        self._thread.join()
        self._thread = None
        self._close_store()

    def _close_store(self) -> None:
        if self._owns_store and self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

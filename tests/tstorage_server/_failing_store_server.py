"""A TStorage server over a store whose commits fail, as on a full disk.

Run as ``python -m tests.tstorage_server._failing_store_server``; prints
``listening on 127.0.0.1:PORT`` and serves until SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from tstorage_server import MemoryStore, TStorageServer


class DiskFullStore(MemoryStore):
    """A store whose commits fail with ENOSPC."""

    def _persist(self, entries: Any, clock_floor: int) -> None:
        raise OSError(28, "No space left on device")


async def main() -> None:
    server = TStorageServer(DiskFullStore(), "127.0.0.1", 0)
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(f"listening on 127.0.0.1:{server.port}", flush=True)
    await stop.wait()
    await server.stop()


if __name__ == "__main__":
    asyncio.run(main())

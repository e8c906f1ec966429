"""A durable server speaking the TStorage protocol, on an LMDB store.

Run it as ``tstorage-server --data-dir DIR [--host H] [--port P]`` (the gateway's
``[tstorage.embedded]`` starts it so, as a child process), or serve a store from an
asyncio program::

    from tstorage_server import LmdbStore, TStorageServer

    server = TStorageServer(LmdbStore("data"), port=0)
    await server.start()  # server.port is then the bound port
    ...
    await server.stop()
"""

from tstorage_server.limits import Limits
from tstorage_server.server import TStorageServer
from tstorage_server.store import LmdbStore, MemoryStore, Store

__all__ = ["Limits", "LmdbStore", "MemoryStore", "Store", "TStorageServer"]

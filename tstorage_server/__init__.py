"""An embedded, durable server speaking the TStorage protocol.

Run it as ``tstorage-server --data-dir DIR [--host H] [--port P]`` or in-process::

    from tstorage_server import EmbeddedServer

    with EmbeddedServer("data") as server:
        print(server.host, server.port)
"""

from tstorage_server.embedded import EmbeddedServer
from tstorage_server.limits import Limits
from tstorage_server.server import TStorageServer
from tstorage_server.store import LmdbStore, MemoryStore, Store

__all__ = ["EmbeddedServer", "Limits", "LmdbStore", "MemoryStore", "Store", "TStorageServer"]

"""Record stores: the one ``Store`` interface and its implementations."""

from tstorage_server.store.base import PutResult, Snapshot, Store
from tstorage_server.store.lmdb import DataDirInUse, LmdbStore
from tstorage_server.store.memory import MemoryStore

__all__ = ["DataDirInUse", "LmdbStore", "MemoryStore", "PutResult", "Snapshot", "Store"]

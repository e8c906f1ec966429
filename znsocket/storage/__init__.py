"""Storage backends: one command interface, an in-memory store and a Redis backend.

* :class:`StorageCommands` / :data:`COMMANDS` - the closed command vocabulary a server
  dispatches (:mod:`znsocket.storage.base`); :mod:`znsocket.storage.spec` says, per
  command, what it reads and writes and which arguments are keys.
* :class:`MemoryStorage` - in-process, Redis-compatible (also exported as
  ``znsocket.Storage``).
* :class:`RedisStorage` - forwards to a redis-server through redis-py.
"""

from znsocket.storage.base import COMMANDS, CommandCall, StorageCommands, command_table
from znsocket.storage.memory import MemoryStorage
from znsocket.storage.redis import RedisStorage

#: Upstream's public name for the in-memory storage.
Storage = MemoryStorage

__all__ = [
    "COMMANDS",
    "CommandCall",
    "MemoryStorage",
    "RedisStorage",
    "Storage",
    "StorageCommands",
    "command_table",
]

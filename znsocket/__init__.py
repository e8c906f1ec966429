"""znsocket: Redis-like storage shared over websockets (drop-in for upstream znsocket 0.3.0).

Client side: :class:`Client` (Redis-like commands, pipelines, large messages),
:class:`List`, :class:`Dict`, :class:`Segments` (proxies of server-side data) and
:class:`ListAdapter` / :class:`DictAdapter` (serve local objects to other clients).
Server side: :class:`Server`, :func:`attach_events` and the storage backends; they are
imported on first use, so a client process does not load the server stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from znsocket import exceptions
from znsocket.client import Client, Pipeline
from znsocket.objects import Dict, DictAdapter, List, ListAdapter, Segments, ZnSocketObject

if TYPE_CHECKING:
    from znsocket.server import Server, attach_events
    from znsocket.storage import MemoryStorage, Storage

#: The upstream release whose API and wire protocol this package implements.
__version__ = "0.3.0"

_LAZY = {
    "Server": "znsocket.server",
    "attach_events": "znsocket.server",
    "MemoryStorage": "znsocket.storage",
    "Storage": "znsocket.storage",
}

__all__ = [
    "Client",
    "Dict",
    "DictAdapter",
    "List",
    "ListAdapter",
    "MemoryStorage",
    "Pipeline",
    "Segments",
    "Server",
    "Storage",
    "ZnSocketObject",
    "attach_events",
    "exceptions",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'znsocket' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

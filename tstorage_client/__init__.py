"""TStorage client package.

Submodules hold the public API (as in the official client): ``tstorage_client.channel``
(:class:`Channel`), ``.channel_async`` (:class:`AsyncChannel`), ``.payload_type``,
``.record``, ``.records_set``, ``.response`` and ``.timestamp``. The names below are also
importable from the package root; they load lazily so that importing the sans-IO core
(``tstorage_client.protocol``) pulls in no socket or asyncio code.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "AsyncChannel",
    "BytesPayloadType",
    "Channel",
    "GetCallback",
    "Key",
    "NumpyPayloadType",
    "PayloadType",
    "Record",
    "RecordsSet",
    "Response",
    "ResponseAcq",
    "ResponseGet",
    "ResponseStatus",
    "StructPayloadType",
    "TStorageError",
    "Tstoragedatetime",
    "TuplePayloadType",
    "UnitPayloadType",
    "from_unix",
    "from_unix_ns",
    "now",
    "now_ns",
    "to_unix",
    "to_unix_ns",
]

_HOME = {
    "AsyncChannel": "channel_async",
    "Channel": "channel",
    "BytesPayloadType": "payload_type",
    "NumpyPayloadType": "payload_type",
    "PayloadType": "payload_type",
    "StructPayloadType": "payload_type",
    "TuplePayloadType": "payload_type",
    "UnitPayloadType": "payload_type",
    "GetCallback": "records_set",
    "RecordsSet": "records_set",
    "Key": "record",
    "Record": "record",
    "Response": "response",
    "ResponseAcq": "response",
    "ResponseGet": "response",
    "ResponseStatus": "response",
    "TStorageError": "errors",
    "Tstoragedatetime": "timestamp",
    "from_unix": "timestamp",
    "from_unix_ns": "timestamp",
    "now": "timestamp",
    "now_ns": "timestamp",
    "to_unix": "timestamp",
    "to_unix_ns": "timestamp",
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'tstorage_client' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted(__all__)

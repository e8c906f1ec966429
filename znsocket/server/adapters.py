"""Adapter bookkeeping (spec §6): who serves which key, and which keys were asked about.

A client may *register* a key it serves from its own memory (``ListAdapter``/
``DictAdapter``); other clients read it through ``adapter:get``, which the server relays to
the owner. ``check_adapter`` (sent by every ``List``/``Dict`` construction) marks a key as
"seen", and a seen key can no longer be registered (upstream's ``KeyError`` "already exists").

Strategy: pure state, no I/O. Keys are strings of bounded length, and the "seen" set is
bounded: once full, further keys are not recorded (registration of such keys then
succeeds), which trades a rare missed conflict for bounded memory. A disconnect removes the
owner's keys from both maps, as upstream.
"""

from __future__ import annotations

from typing import Any

from znsocket.protocol.payload import Envelope, error_envelope

__all__ = ["MAX_ADAPTER_KEY_CHARS", "AdapterRegistry", "adapter_key"]

MAX_ADAPTER_KEY_CHARS = 4096


def adapter_key(data: Any) -> str:
    """The ``key`` of an adapter event payload ``[[], {"key": K, ...}]``.

    Raises:
        ValueError: If the payload has another shape or the key is not a short string.
    """
    if not (isinstance(data, list) and len(data) == 2 and isinstance(data[1], dict)):
        raise ValueError('payload must be [[], {"key": str, ...}]')
    key = data[1].get("key")
    if not isinstance(key, str) or not key or len(key) > MAX_ADAPTER_KEY_CHARS:
        raise ValueError(f"key must be a string of 1 to {MAX_ADAPTER_KEY_CHARS} characters")
    return key


class AdapterRegistry:
    """Owners of adapter keys and the set of keys clients have checked.

    Args:
        max_checked_keys: Bound on the remembered ``check_adapter`` keys.
    """

    def __init__(self, max_checked_keys: int = 1_000_000) -> None:
        self.owners: dict[str, str] = {}
        self.checked: set[str] = set()
        self.max_checked_keys = max_checked_keys

    def register(self, key: str, sid: str) -> Envelope | bool:
        """Make ``sid`` the owner of ``key``; ``True`` or a ``KeyError`` envelope."""
        if key in self.checked:
            return error_envelope("KeyError", f"Key {key} already exists in storage")
        self.owners[key] = sid
        return True

    def check(self, key: str) -> bool:
        """Remember that ``key`` was asked about; whether it is served by an adapter."""
        if len(self.checked) < self.max_checked_keys:
            self.checked.add(key)
        return key in self.owners

    def exists(self, key: str) -> bool:
        """Whether ``key`` is served by an adapter (no side effect)."""
        return key in self.owners

    def owner(self, key: str) -> str | None:
        """The connection serving ``key``, if any."""
        return self.owners.get(key)

    def drop_owner(self, sid: str) -> list[str]:
        """Forget every key served by ``sid``; returns those keys."""
        keys = [k for k, owner in self.owners.items() if owner == sid]
        for key in keys:
            del self.owners[key]
            self.checked.discard(key)
        return keys

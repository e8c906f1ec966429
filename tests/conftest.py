"""Suite-wide fixtures. Package-specific fixtures live in each tests/<package>/conftest.py."""

from __future__ import annotations

import contextlib
import shutil
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from znsocket.client.transport import SocketIOTransport


@pytest.fixture(scope="session")
def redis_server_path() -> str:
    """Path of Debian's redis-server (installed by scripts/bootstrap.sh)."""
    path = shutil.which("redis-server")
    if path is None:
        pytest.fail("redis-server is not installed: run scripts/bootstrap.sh --with-test-deps")
    return path


@pytest.fixture(autouse=True)
def _close_clients_left_open(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Disconnect every znsocket client a test opened and did not close.

    A client left open keeps reconnecting in the background once its server stops, and
    could reach a later test's server on the same port.
    """
    opened: list[weakref.ref[SocketIOTransport]] = []
    original = SocketIOTransport.__init__

    def tracking_init(self: SocketIOTransport, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        opened.append(weakref.ref(self))

    monkeypatch.setattr(SocketIOTransport, "__init__", tracking_init)
    yield
    for ref in opened:
        transport = ref()
        if transport is not None and transport._conn_args is not None:
            with contextlib.suppress(Exception):  # already broken: nothing left to close
                transport.disconnect()

"""Fixtures for the znsocket server tests: a throwaway redis-server and server processes."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import socketio

from tests._servers import ServerProcess, spawn


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (redis cannot bind port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url(redis_server_path: str) -> Iterator[str]:
    """``redis://127.0.0.1:PORT/0`` of a private redis-server without persistence."""
    for _attempt in range(5):
        port = free_port()
        proc = subprocess.Popen(
            [
                redis_server_path,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        if proc.poll() is None:
            break
    else:  # pragma: no cover - only when every port raced
        pytest.fail("could not start redis-server")
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        proc.terminate()
        proc.wait(10)


NAMESPACE = "/znsocket"


class RawClient:
    """A python-socketio client speaking the znsocket events exactly as upstream clients do."""

    def __init__(self, url: str, **connect_kwargs: Any) -> None:
        self.sio = socketio.Client(reconnection=False)
        self.refreshes: list[Any] = []
        self.adapter_requests: list[Any] = []
        self.adapter_answer: Any = None

        @self.sio.on("refresh", namespace=NAMESPACE)
        def _refresh(data: Any) -> None:
            self.refreshes.append(data)

        @self.sio.on("adapter:get", namespace=NAMESPACE)
        def _adapter_get(data: Any) -> Any:
            self.adapter_requests.append(data)
            if callable(self.adapter_answer):
                return self.adapter_answer(data)
            return self.adapter_answer

        connect_kwargs.setdefault("transports", ["websocket"])  # the default; tests vary it
        self.sio.connect(url, namespaces=[NAMESPACE], wait_timeout=10, **connect_kwargs)

    def call(self, event: str, data: Any = None, timeout: float = 15) -> Any:
        return self.sio.call(event, data, namespace=NAMESPACE, timeout=timeout)

    def cmd(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Send a command event with the ``[args, kwargs]`` payload; return the envelope."""
        return self.call(name, [list(args), kwargs])

    def emit(self, event: str, data: Any) -> None:
        self.sio.emit(event, data, namespace=NAMESPACE)

    def close(self) -> None:
        self.sio.disconnect()


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """A CLI server (memory storage) on 127.0.0.1 with a 1 MB packet limit."""
    with spawn(
        ["znsocket", "--host", "127.0.0.1", "--port", "0", "--max-http-buffer-size", "1000000"]
    ) as proc:
        yield proc


@pytest.fixture
def connect(server: ServerProcess) -> Iterator[Callable[..., RawClient]]:
    """Open raw clients to ``server``; all are closed afterwards."""
    clients: list[RawClient] = []

    def factory(url: str | None = None, **kwargs: Any) -> RawClient:
        client = RawClient(url or server.url, **kwargs)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()


@pytest.fixture
def client(connect: Callable[..., RawClient]) -> RawClient:
    """One raw client; the storage is flushed first."""
    c = connect()
    assert c.cmd("flushall") == {"data": True}
    return c

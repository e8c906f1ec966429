"""Fixtures: our znsocket server as a process, clients on it, and a real Redis.

Set ``ZNSOCKET_TEST_SERVER=upstream`` to run the same tests against upstream's server
(from ``tests/_upstream.py``) instead of ours.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

import znsocket
from tests._servers import ServerProcess, spawn
from tests._upstream import free_port, start_upstream_server

OUR_SERVER = ["znsocket", "--port", "0", "--host", "127.0.0.1"]


def start_server(*extra: str) -> ServerProcess:
    """Start the server under test (ours unless ZNSOCKET_TEST_SERVER=upstream)."""
    if os.environ.get("ZNSOCKET_TEST_SERVER") == "upstream":
        return start_upstream_server(*extra)
    return spawn([*OUR_SERVER, *extra])


@pytest.fixture(scope="session")
def server() -> Iterator[ServerProcess]:
    """One server for the whole session; tests use unique keys or flush."""
    proc = start_server()
    yield proc
    proc.stop()


@pytest.fixture
def client(server: ServerProcess) -> Iterator[znsocket.Client]:
    c = znsocket.Client.from_url(f"znsocket://127.0.0.1:{server.port}")
    yield c
    c.flushall()
    c.sio.disconnect()


@pytest.fixture
def client2(server: ServerProcess) -> Iterator[znsocket.Client]:
    """A second connection, to observe what the first one emits."""
    c = znsocket.Client.from_url(f"znsocket://127.0.0.1:{server.port}")
    yield c
    c.sio.disconnect()


@pytest.fixture(scope="session")
def redis_url(redis_server_path: str) -> Iterator[str]:
    """A private redis-server on a free loopback port, without persistence."""
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
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 20
    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.exceptions.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("redis-server did not start")
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    yield r
    r.flushdb()
    r.close()


@pytest.fixture(params=["znsocket", "redis", "empty"])
def backend(request: pytest.FixtureRequest) -> Any:
    """A connection for List/Dict tests: our client, redis-py on Redis, or ``None``.

    ``None`` means: run the test body against a plain Python list/dict instead, the
    reference behaviour the proxies must match.
    """
    if request.param == "znsocket":
        return request.getfixturevalue("client")
    if request.param == "redis":
        return request.getfixturevalue("redis_client")
    return None

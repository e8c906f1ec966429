"""The ``znsocket`` command and ``Server``: binding, storage choice, auth, clean shutdown."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import socketio

from tests._servers import ServerProcess, spawn
from tests.znsocket.server.conftest import RawClient
from znsocket.server import Server, resolve_storage
from znsocket.storage import MemoryStorage, RedisStorage

pytestmark = pytest.mark.integration


def test_listening_line_reports_the_real_port() -> None:
    with spawn(["znsocket", "--host", "127.0.0.1", "--port", "0"]) as proc:
        assert proc.port > 0
        assert f"listening on 127.0.0.1:{proc.port}" in proc.text()
        client = RawClient(proc.url)
        assert client.call("server_config")["max_http_buffer_size"] == 5 * 1024 * 1024
        client.close()


def test_sigterm_stops_cleanly() -> None:
    proc = spawn(["znsocket", "--host", "127.0.0.1", "--port", "0"])
    client = RawClient(proc.url)  # an open websocket must not hold up the shutdown
    assert proc.stop(timeout=10) == 0
    client.close()


def test_sigint_stops_cleanly() -> None:
    proc = spawn(["znsocket", "--host", "127.0.0.1", "--port", "0"])
    proc.proc.send_signal(signal.SIGINT)
    assert proc.proc.wait(10) == 0


def test_default_port_is_upstreams_and_the_default_host_is_loopback() -> None:
    from znsocket.cli import build_parser

    args = build_parser().parse_args([])
    assert (args.port, args.host, args.storage, args.max_http_buffer_size) == (
        8080,
        "127.0.0.1",
        "memory",
        5242880,
    )


def test_without_host_the_command_listens_on_loopback_only() -> None:
    with spawn(["znsocket", "--port", "0"]) as proc:
        assert f"listening on 127.0.0.1:{proc.port}" in proc.text()
        assert "no token authentication" not in proc.text()
    with spawn(["znsocket", "--host", "0.0.0.0", "--port", "0", "--token", "t"]) as proc:
        assert f"listening on 0.0.0.0:{proc.port}" in proc.text()
        assert "no token authentication" not in proc.text()
    with spawn(["znsocket", "--host", "0.0.0.0", "--port", "0"]) as proc:
        assert "no token authentication on 0.0.0.0" in proc.text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-connections", "0"], "positive"),
        (["--request-timeout", "0"], "positive number of seconds"),
        (["--chunk-timeout", "-1"], "positive number of seconds"),
        (["--max-attachments", "0"], "positive"),
        (["--chunk-buffer-per-connection", "0"], "positive"),
    ],
)
def test_bad_limits_exit_with_a_message(argv: list[str], message: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "znsocket.cli", "--port", "0", *argv],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert message in proc.stderr


def test_a_port_in_use_is_refused_not_shared() -> None:
    """No SO_REUSEPORT: a second server on the first one's port exits with a message (a
    shared port would split the clients between two servers and their data)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    with spawn(["znsocket", "--host", "127.0.0.1", "--port", port]):
        proc = subprocess.run(
            [sys.executable, "-m", "znsocket.cli", "--host", "127.0.0.1", "--port", port],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 1
        assert f"127.0.0.1:{port} is in use by another server" in proc.stderr
        assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "70000"], "between 0 and 65535"),
        (["--max-http-buffer-size", "0"], "positive"),
        (["--storage", "sqlite://x"], "Unsupported storage backend"),
        (["--log-level", "LOUD"], "invalid choice"),
    ],
)
def test_bad_options_exit_with_a_message(argv: list[str], message: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "znsocket.cli", "--host", "127.0.0.1", "--port", "0", *argv],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert message in proc.stderr


def test_server_from_url() -> None:
    assert Server.from_url("znsocket://127.0.0.1:5123").port == 5123
    assert Server.from_url("znsocket://example.org:80/").port == 80
    with pytest.raises(ValueError, match="Invalid URL"):
        Server.from_url("http://127.0.0.1:5000")
    server = Server()
    assert (
        server.port,
        server.max_http_buffer_size,
        server.async_mode,
        server.logger,
        server.storage,
    ) == (
        5000,
        None,
        None,
        False,
        "memory",
    )


def test_server_refuses_async_modes_it_cannot_serve() -> None:
    with pytest.raises(ValueError, match="only 'eventlet'"):
        Server(async_mode="threading").build()
    assert Server(async_mode="eventlet").build().sio.async_mode == "eventlet"


def test_resolve_storage() -> None:
    assert isinstance(resolve_storage("memory"), MemoryStorage)
    assert isinstance(resolve_storage("redis://127.0.0.1:1/0"), RedisStorage)
    storage = MemoryStorage()
    assert resolve_storage(storage) is storage
    with pytest.raises(ValueError, match="Unsupported storage backend: redis"):
        resolve_storage("redis")


# ----------------------------------------------------------------- redis backend
@pytest.fixture(scope="module")
def redis_server(redis_url: str) -> Iterator[ServerProcess]:
    with spawn(["znsocket", "--host", "127.0.0.1", "--port", "0", "--storage", redis_url]) as proc:
        yield proc


def test_redis_backed_server_shares_the_redis_layout(
    redis_server: ServerProcess, redis_url: str
) -> None:
    direct = redis.Redis.from_url(redis_url, decode_responses=True)
    client = RawClient(redis_server.url)
    try:
        client.cmd("flushall")
        assert client.cmd("hset", "znsocket.Dict:d", "a", '{"x": 1}') == {"data": 1}
        assert direct.hgetall("znsocket.Dict:d") == {"a": '{"x": 1}'}
        direct.rpush("znsocket.List:l", "1", "2")
        assert client.cmd("lrange", "znsocket.List:l", 0, -1) == {"data": ["1", "2"]}
        assert client.cmd("hexists", "znsocket.Dict:d", "a") == {"data": 1}
        assert client.cmd("smembers", "none") == {"data": [], "type": "set"}
        assert client.cmd("lset", "nolist", 0, "x") == {
            "error": {"msg": "no such key", "type": "ResponseError"}
        }
        message = [["set", [["p", "1"], {}]], ["set", [["q", None], {}]]]
        assert client.call("pipeline", [[], {"message": message}])["error"]["type"] == "DataError"
    finally:
        client.close()
        direct.close()


@pytest.mark.parametrize(
    "event",
    ["execute_command", "shutdown", "config_set", "flushdb", "eval", "client", "connection_pool"],
)
def test_redis_client_surface_is_not_reachable(
    redis_server: ServerProcess, redis_url: str, event: str
) -> None:
    direct = redis.Redis.from_url(redis_url, decode_responses=True)
    client = RawClient(redis_server.url)
    try:
        direct.set("sentinel", "kept")
        before = direct.config_get("maxmemory")
        payloads: list[list[Any]] = [
            [["SHUTDOWN"], {}],
            [["maxmemory", "1"], {}],
            [["FLUSHALL"], {}],
            [[], {}],
        ]
        for payload in payloads:
            assert client.call(event, payload)["error"]["type"] == "UnknownEventError"
        assert direct.get("sentinel") == "kept"
        assert direct.config_get("maxmemory") == before
        assert direct.ping()
    finally:
        client.close()
        direct.close()


# ----------------------------------------------------------------- authentication
@pytest.fixture(scope="module")
def auth_server() -> Iterator[ServerProcess]:
    with spawn(
        ["znsocket", "--host", "127.0.0.1", "--port", "0", "--token", "first"],
        env={"ZNSOCKET_TOKENS": "second,third"},
    ) as proc:
        yield proc


def test_connections_without_a_token_are_refused(auth_server: ServerProcess) -> None:
    with pytest.raises(socketio.exceptions.ConnectionError):
        RawClient(auth_server.url)
    with pytest.raises(socketio.exceptions.ConnectionError):
        RawClient(auth_server.url, auth={"token": "wrong"})


@pytest.mark.parametrize(
    "how",
    [
        {"auth": {"token": "first"}},
        {"auth": {"token": "third"}},
        {"headers": {"Authorization": "Bearer second"}},
        {"query": "?token=first"},
    ],
)
def test_connections_with_a_token_are_accepted(
    auth_server: ServerProcess, how: dict[str, object]
) -> None:
    url = auth_server.url + str(how.pop("query", ""))
    client = RawClient(url, **how)
    try:
        assert client.cmd("set", "authed", "1") == {"data": True}
    finally:
        client.close()


def test_token_auth_keeps_other_clients_served(auth_server: ServerProcess) -> None:
    good = RawClient(auth_server.url, auth={"token": "first"})
    try:
        for _ in range(3):
            with pytest.raises(socketio.exceptions.ConnectionError):
                RawClient(auth_server.url, auth={"token": "nope"})
        assert good.cmd("get", "authed") in ({"data": "1"}, {"data": None})
        assert auth_server.alive()
    finally:
        good.close()


def test_env_tokens_alone_turn_auth_on() -> None:
    env = dict(os.environ, ZNSOCKET_TOKENS="only")
    with spawn(["znsocket", "--host", "127.0.0.1", "--port", "0"], env=env) as proc:
        with pytest.raises(socketio.exceptions.ConnectionError):
            RawClient(proc.url)
        client = RawClient(proc.url, auth={"token": "only"})
        client.close()

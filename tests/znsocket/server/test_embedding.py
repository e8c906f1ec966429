"""Embedding the server as another package does: create_app + serve with its own hooks."""

from __future__ import annotations

import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import socketio

from tests._servers import ServerProcess, spawn
from tests.znsocket.server.conftest import RawClient

pytestmark = pytest.mark.integration

SCRIPT = textwrap.dedent(
    '''
    """A custom server: token principals, a per-command policy, server-side refreshes."""
    from znsocket.exceptions import PermissionDeniedError
    from znsocket.server import create_app, serve, token_authenticator
    from znsocket.storage import MemoryStorage


    class AuditedStorage(MemoryStorage):
        """Tells every client when a key changes, as a backend with its own writers would."""

        def hget(self, name, key):
            # replies orjson cannot encode take python-socketio's packet path
            if name == "special":
                return {"binary": b"\\x00\\x01", "huge": 2**70, "odd": object()}[key]
            return super().hget(name, key)

        def set(self, name, value, *args, **kwargs):
            result = super().set(name, value, *args, **kwargs)
            app.emit_refresh(f"znsocket.Dict:{name}", {"keys": [name]})
            return result


    def authorize(principal, command, args, kwargs):
        if principal == "token-1" and command not in ("get", "hget", "check_adapter"):
            raise PermissionDeniedError(f"{principal} is read-only: {command} refused")


    app = create_app(
        AuditedStorage(),
        authenticate=token_authenticator(["writer", "reader"]),
        authorize=authorize,
        max_http_buffer_size=200_000,
    )
    serve(app.wsgi_app, "127.0.0.1", 0)
    '''
)


@pytest.fixture(scope="module")
def custom_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    script = Path(tmp_path_factory.mktemp("embedding")) / "custom_server.py"
    script.write_text(SCRIPT)
    with spawn([sys.executable, str(script)]) as proc:
        yield proc


def test_policy_and_server_side_refresh(custom_server: ServerProcess) -> None:
    writer = RawClient(custom_server.url, auth={"token": "writer"})
    reader = RawClient(custom_server.url, auth={"token": "reader"})
    try:
        assert writer.call("server_config")["max_http_buffer_size"] == 200_000
        assert writer.cmd("set", "k", "v") == {"data": True}
        assert reader.cmd("get", "k") == {"data": "v"}
        assert reader.cmd("set", "k", "w") == {
            "error": {"msg": "token-1 is read-only: set refused", "type": "PermissionDeniedError"}
        }
        message = [["get", [["k"], {}]], ["delete", [["k"], {}]]]
        assert reader.call("pipeline", [[], {"message": message}])["error"]["type"] == (
            "PermissionDeniedError"
        )
        assert reader.call("refresh", {"target": "x", "data": {}})["error"]["type"] == (
            "PermissionDeniedError"
        )
        assert reader.cmd("get", "k") == {"data": "v"}
        deadline = time.monotonic() + 5
        while not reader.refreshes and time.monotonic() < deadline:
            time.sleep(0.02)
        # the server-originated refresh reaches every client, the writer included
        assert {"target": "znsocket.Dict:k", "data": {"keys": ["k"]}} in reader.refreshes
        assert {"target": "znsocket.Dict:k", "data": {"keys": ["k"]}} in writer.refreshes
        with pytest.raises(socketio.exceptions.ConnectionError):
            RawClient(custom_server.url)
        assert writer.cmd("hget", "special", "binary") == {"data": b"\x00\x01"}
        assert writer.cmd("hget", "special", "huge") == {"data": 2**70}
        odd = writer.cmd("hget", "special", "odd")
        assert odd["error"]["type"] == "SerializationError"
        message = [["hget", [["special", "binary"], {}]]]
        assert writer.call("pipeline", [[], {"message": message}]) == {
            "data": [{"data": b"\x00\x01"}]
        }
        assert writer.cmd("get", "k") == {"data": "v"}  # the connection survived
    finally:
        writer.close()
        reader.close()

"""The doors to other libraries' internals (``znsocket/server/doors.py``): every fast path
runs by default, ``ZNSOCKET_FAST_PATHS=0`` turns them all off, and a library outside the
tested versions is left alone, with one warning, while the server goes on serving.

The server under test reports its doors' use counters through an event of its own
(``test:doors``), so what is checked is what ran in the server process.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Ping, Request, TextMessage
from wsproto.extensions import PerMessageDeflate

import znsocket
from tests._servers import ROOT, ServerProcess, spawn
from tests.znsocket.server.conftest import NAMESPACE, RawClient
from znsocket.protocol.framing import encode_buffer
from znsocket.server import _engineio_private, _eventlet_private, _socketio_private

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

pytestmark = pytest.mark.integration

SCRIPT = textwrap.dedent(
    '''
    """A znsocket server that reports its doors; argv: NAME=VERSION to fake an install."""
    import importlib.metadata
    import sys

    fake = dict(arg.split("=", 1) for arg in sys.argv[1:])
    real = importlib.metadata.version
    importlib.metadata.version = lambda name: fake.get(name) or real(name)

    from znsocket.server import create_app, doors, serve
    from znsocket.storage import MemoryStorage

    app = create_app(MemoryStorage())


    @app.sio.on("test:doors", namespace=app.namespace)
    def report(sid, *args):
        return doors.usage()


    serve(app.wsgi_app, "127.0.0.1", 0)
    '''
)

LIBRARIES = ("python-socketio", "python-engineio", "eventlet")
WARNING = "is outside the tested range"


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = Path(tmp_path_factory.mktemp("doors")) / "doors_server.py"
    path.write_text(SCRIPT)
    return path


def start(script: Path, *fakes: str, env: dict[str, str] | None = None) -> ServerProcess:
    return spawn([sys.executable, str(script), *fakes], env=env)


def exercise(url: str) -> dict[str, Any]:
    """Drive every path a client can take; return what each answered."""
    client = RawClient(url)
    watcher = RawClient(url)
    try:
        answers: dict[str, Any] = {
            "set": client.cmd("set", "k", "v" * 100),
            "get": client.cmd("get", "k"),
            "binary": client.cmd("set", "b", b"\x00\x01"),
            "pipeline": client.call(
                "pipeline", [[], {"message": [["rpush", [["l", "a"], {}]], ["llen", [["l"], {}]]]}]
            ),
            "compressed": client.call(
                "compressed_message",
                {
                    "event": "get",
                    "data": encode_buffer(json.dumps([["k"], {}]).encode(), compress=True),
                },
            ),
            "unknown": client.cmd("no_such_command"),
            "config": client.call("server_config"),
        }
        # a value of 120 kB of numbers, read back as a browser reads it (compressed)
        client.cmd("set", "numbers", json.dumps([i / 7 for i in range(6000)]))
        answers["deflated"] = deflated_call(url, "get", ["numbers"])
        client.emit("refresh", {"target": "znsocket.List:l", "data": {"start": 0}})
        lst = znsocket.List(znsocket.Client.from_url(url.replace("http", "znsocket")), "zl")
        lst.extend(["x", "y"])
        answers["list"] = list(lst)
        answers["refreshes"] = _wait(lambda: watcher.refreshes)
        return answers
    finally:
        client.close()
        watcher.close()


def deflated_call(url: str, event: str, args: list[Any], timeout: float = 10.0) -> Any:
    """Call ``event`` over a WebSocket that negotiated permessage-deflate, as browsers do
    (wsproto, which python-engineio's simple-websocket brings); returns the answer."""
    host, port = url.removeprefix("http://").split(":")
    ws = WSConnection(ConnectionType.CLIENT)
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    request = Request(
        host=f"{host}:{port}",
        target="/socket.io/?EIO=4&transport=websocket",
        extensions=[PerMessageDeflate()],
    )
    sock.sendall(ws.send(request))
    sent = False
    try:
        while True:
            data = sock.recv(65536)
            assert data, "the server closed the connection"
            ws.receive_data(data)
            for ev in ws.events():
                if isinstance(ev, AcceptConnection):
                    assert [e.name for e in ev.extensions] == ["permessage-deflate"]
                elif isinstance(ev, Ping):
                    sock.sendall(ws.send(ev.response()))
                elif isinstance(ev, TextMessage):
                    assert ev.message_finished
                    text = ev.data
                    if text.startswith("0"):  # Engine.IO open: join the namespace
                        sock.sendall(ws.send(TextMessage(data=f"40{NAMESPACE},")))
                    elif text == "2":
                        sock.sendall(ws.send(TextMessage(data="3")))
                    elif text.startswith(f"40{NAMESPACE},") and not sent:
                        call = json.dumps([event, [args, {}]])
                        sock.sendall(ws.send(TextMessage(data=f"42{NAMESPACE},1{call}")))
                        sent = True
                    elif text.startswith(f"43{NAMESPACE},1"):
                        return json.loads(text.removeprefix(f"43{NAMESPACE},1"))[0]
    finally:
        sock.close()


def _wait(get: Any, timeout: float = 10.0) -> Any:
    import time

    deadline = time.monotonic() + timeout
    while not get() and time.monotonic() < deadline:
        time.sleep(0.02)
    return get()


def usage(url: str) -> dict[str, Any]:
    client = RawClient(url)
    try:
        return client.call("test:doors")  # type: ignore[no-any-return]
    finally:
        client.close()


@pytest.fixture(scope="module")
def default_run(script: Path) -> Iterator[tuple[dict[str, Any], dict[str, Any], str]]:
    with start(script, env={"ZNSOCKET_FAST_PATHS": "1"}) as proc:
        answers = exercise(proc.url)
        yield answers, usage(proc.url), proc.text()


def test_every_fast_path_runs_by_default(
    default_run: tuple[dict[str, Any], dict[str, Any], str],
) -> None:
    answers, report, log = default_run
    # the compressed answer inflates to the value, compressed on the faster path
    assert json.loads(answers["deflated"]["data"]) == [i / 7 for i in range(6000)]
    assert report["eventlet"]["used"]["fast_deflate"] > 0
    assert set(report) == set(LIBRARIES)
    for library, door in report.items():
        assert door["open"] and door["fast"], library
        unused = [name for name, count in door["used"].items() if count == 0]
        assert unused == [], f"{library}: fast paths that never ran: {unused}"
    assert WARNING not in log


def test_fast_paths_off_answer_alike_and_none_runs(
    script: Path, default_run: tuple[dict[str, Any], dict[str, Any], str]
) -> None:
    with start(script, env={"ZNSOCKET_FAST_PATHS": "0"}) as proc:
        answers = exercise(proc.url)
        report = usage(proc.url)
        log = proc.text()
    assert answers == default_run[0]
    for library, door in report.items():
        assert door["open"] and not door["fast"], library
        assert set(door["used"].values()) == {0}, library
    assert WARNING not in log


@pytest.mark.parametrize(
    ("library", "fake"),
    [("python-socketio", "5.99.0"), ("python-engineio", "4.99.0"), ("eventlet", "0.99.0")],
)
def test_untested_version_warns_once_and_serves_on_the_library_path(
    script: Path,
    default_run: tuple[dict[str, Any], dict[str, Any], str],
    library: str,
    fake: str,
) -> None:
    with start(script, f"{library}={fake}", env={"ZNSOCKET_FAST_PATHS": "1"}) as proc:
        answers = exercise(proc.url)
        RawClient(proc.url).close()  # a second connection: still one warning
        report = usage(proc.url)
        log = proc.text()
    assert answers == default_run[0]
    warnings = [line for line in log.splitlines() if WARNING in line]
    assert len(warnings) == 1, log
    assert f"{library} {fake} is outside the tested range" in warnings[0]
    door = report[library]
    assert door["installed"] == fake
    assert not door["open"] and not door["fast"]
    assert set(door["used"].values()) == {0}
    for other in set(LIBRARIES) - {library}:
        assert report[other]["open"], other


def test_doors_test_the_ranges_pyproject_allows() -> None:
    """Each door's tested range is the dependency range ``pyproject.toml`` caps."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    ranges = {}
    for requirement in project["dependencies"]:
        match = re.match(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?(.*)", requirement)
        assert match is not None
        ranges[match.group(1)] = match.group(2).replace(" ", "")
    for module in (_socketio_private, _engineio_private, _eventlet_private):
        door = module.DOOR
        assert ranges[door.distribution] == door.tested, door.distribution

"""The codec package stays sans-IO: no sockets, socket.io, threads or clocks."""

from __future__ import annotations

import ast
from pathlib import Path

import znsocket.protocol

FORBIDDEN = {"socket", "socketio", "engineio", "eventlet", "asyncio", "threading", "time", "select"}


def test_protocol_modules_import_no_io() -> None:
    package = Path(znsocket.protocol.__file__).parent
    for module in sorted(package.glob("*.py")):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{module.name} imports {name}"

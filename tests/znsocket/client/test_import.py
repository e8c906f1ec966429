"""Importing the client side must not pull in the server stack."""

from __future__ import annotations

import subprocess
import sys


def test_client_import_is_light() -> None:
    code = "import sys, znsocket; znsocket.List; print('eventlet' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_public_names() -> None:
    import znsocket

    for name in (
        "Client",
        "Server",
        "Storage",
        "MemoryStorage",
        "List",
        "Dict",
        "Segments",
        "ListAdapter",
        "DictAdapter",
        "attach_events",
        "exceptions",
    ):
        assert getattr(znsocket, name) is not None
    assert issubclass(znsocket.exceptions.ResponseError, Exception)

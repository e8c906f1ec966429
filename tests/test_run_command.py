"""The README's run command starts the product: the gateway on the embedded TStorage."""

from __future__ import annotations

import pytest

import znsocket
from tests._servers import ROOT, spawn

pytestmark = pytest.mark.integration


def test_run_script_serves_the_example_config() -> None:
    # Extra arguments go to `gateway run`: a free port, so a running instance does not clash.
    with spawn(["bash", str(ROOT / "scripts" / "run.sh"), "--port", "0"], timeout=300) as gw:
        client = znsocket.Client.from_url(f"znsocket://127.0.0.1:{gw.port}")
        series = znsocket.List(client, "meters/1/1")
        before = len(series)
        series.append(1.5)
        assert len(series) == before + 1 and series[-1] == 1.5
        assert "TStorage: embedded" in gw.text()
        client.sio.disconnect()
        assert gw.stop() == 0, gw.text()

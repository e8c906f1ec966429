"""The gateway on a remote TStorage that speaks TLS (``[tstorage.tls]``)."""

from __future__ import annotations

import ssl
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import znsocket
from tests._servers import ServerProcess, spawn
from tests._tls import TlsFiles, make_tls_files
from tests.gateway.conftest import meter_config
from tstorage_client.channel import Channel
from tstorage_client.payload_type import BytesPayloadType, StructPayloadType
from tstorage_client.record import Key, Record

CID = 77


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_tstorage(
    tmp_path_factory: pytest.TempPathFactory, pki: TlsFiles
) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("tstorage-tls")
    argv = ["tstorage-server", "--data-dir", str(data), "--port", "0"]
    argv += ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    argv += ["--tls-client-ca", str(pki.ca)]
    with spawn(argv) as proc:
        yield proc


def tls_table(pki: TlsFiles, *, client_cert: bool = True) -> str:
    text = f'\n[tstorage.tls]\nca_file = "{pki.ca}"\n'
    if client_cert:
        text += f'cert_file = "{pki.client_cert}"\nkey_file = "{pki.client_key}"\n'
    return text


def test_lists_over_tls(
    tls_tstorage: ServerProcess,
    pki: TlsFiles,
    start_gateway: Callable[[str], ServerProcess],
) -> None:
    gw = start_gateway(meter_config(tls_tstorage, CID, CID + 1) + tls_table(pki))
    assert "(TLS)" in gw.text()
    c = znsocket.Client.from_url(f"znsocket://127.0.0.1:{gw.port}")
    lst = znsocket.List(c, "meters/5/1")
    lst.extend([1.5, 2.5])
    assert lst[:] == [1.5, 2.5]
    # the records are in TStorage, read back by a TLS client of its own
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    ctx.load_cert_chain(pki.client_cert, pki.client_key)
    ch: Channel[float] = Channel(
        "127.0.0.1", tls_tstorage.port, StructPayloadType("<d"), ssl_context=ctx
    )
    with ch:
        res = ch.get(Key(CID, 5, 1, 0, 0), Key(CID + 1, 6, 2, 2**62, 2**62))
        assert res.is_ok() and [r.value for r in res.data] == [1.5, 2.5]


def test_a_gateway_without_its_client_certificate_refuses_to_start(
    tls_tstorage: ServerProcess, pki: TlsFiles, tmp_path: Path
) -> None:
    port = f"port = {tls_tstorage.port}\n"
    text = meter_config(tls_tstorage, CID, CID + 1).replace(port, port + "timeout = 1.0\n", 1)
    config = tmp_path / "gateway.toml"
    config.write_text(text + tls_table(pki, client_cert=False))
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "run", "--config", str(config), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert f"TStorage at 127.0.0.1:{tls_tstorage.port}" in done.stderr
    assert tls_tstorage.proc.poll() is None  # TStorage itself stays up


def test_the_dashboard_lists_series_over_tls(
    tls_tstorage: ServerProcess,
    pki: TlsFiles,
    start_gateway: Callable[[str], ServerProcess],
) -> None:
    """Series discovery (the dashboard's listing, ``ts:mrange``) reads TStorage over TLS too."""
    cid = CID + 10
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    ctx.load_cert_chain(pki.client_cert, pki.client_key)
    # records another writer stored: only discovery finds them
    ch: Channel[bytes] = Channel(
        "127.0.0.1", tls_tstorage.port, BytesPayloadType(), ssl_context=ctx
    )
    with ch:
        records = [
            Record(Key(cid, mid, 1, 10**9 * (i + 1)), struct.pack("<d", i))
            for mid in (3, 4)
            for i in range(3)
        ]
        assert ch.put(records).is_ok()
    gw = start_gateway(meter_config(tls_tstorage, cid, cid + 1) + tls_table(pki))
    c = znsocket.Client.from_url(f"znsocket://127.0.0.1:{gw.port}")
    try:
        listing = c.call("dashboard:series")
        assert "error" not in listing, listing
        got = [(e["key"], e["count"], e["latest"]) for e in listing["data"]["series"]]
        assert got == [("meters/3/1", 3, 2.0), ("meters/4/1", 3, 2.0)]
        mrange = c.call("ts:mrange", pattern="meters/*/1")
        assert [s["key"] for s in mrange["data"]["series"]] == ["meters/3/1", "meters/4/1"], mrange
    finally:
        c.sio.disconnect()
    assert gw.alive()

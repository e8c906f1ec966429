"""``tstorage-server --tls-cert/--tls-key``: TLS for the official clients' ``ssl_context``."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._servers import ServerProcess, spawn
from tests._tls import TlsFiles, make_tls_files
from tests.tstorage_server.conftest import server_argv
from tstorage_client.channel import Channel
from tstorage_client.channel_async import AsyncChannel
from tstorage_client.payload_type import BytesPayloadType
from tstorage_client.record import Key, Record

LO, HI = Key(7, 0, 0, 0, 0), Key(8, 100, 100, 2**62, 2**62)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("pki"))


def _tls_server(data_dir: Path, tls: TlsFiles, *extra: str) -> ServerProcess:
    return spawn(
        [
            *server_argv(data_dir),
            "--tls-cert",
            str(tls.server_cert),
            "--tls-key",
            str(tls.server_key),
            *extra,
        ]
    )


@pytest.fixture
def tls_server(data_dir: Path, tls: TlsFiles) -> Iterator[ServerProcess]:
    proc = _tls_server(data_dir, tls)
    try:
        yield proc
    finally:
        proc.stop()


def client_context(tls: TlsFiles, *, with_cert: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(tls.ca))
    if with_cert:
        ctx.load_cert_chain(tls.client_cert, tls.client_key)
    return ctx


def test_round_trip_over_tls(tls_server: ServerProcess, tls: TlsFiles) -> None:
    assert "(TLS)" in tls_server.text()
    rec = Record(Key(7, 1, 2, 3), b"over tls")
    with Channel(
        "127.0.0.1", tls_server.port, BytesPayloadType(), ssl_context=client_context(tls)
    ) as ch:
        assert ch.put([rec]).is_ok()
        res = ch.get(LO, HI)
        assert res.is_ok()
        assert [(r.key.cid, r.key.mid, r.key.moid, r.key.cap, r.value) for r in res.data] == [
            (7, 1, 2, 3, b"over tls")
        ]


async def test_async_channel_over_tls(tls_server: ServerProcess, tls: TlsFiles) -> None:
    async with AsyncChannel(
        "127.0.0.1", tls_server.port, BytesPayloadType(), ssl_context=client_context(tls)
    ) as ch:
        assert (await ch.put([Record(Key(7, 5, 5, 5), b"async")])).is_ok()
        res = await ch.get(LO, HI)
        assert res.is_ok() and [r.value for r in res.data] == [b"async"]


def test_plain_client_is_refused_and_server_stays_up(
    tls_server: ServerProcess, tls: TlsFiles
) -> None:
    # a client without TLS gets a failure status, never a hang
    with Channel("127.0.0.1", tls_server.port, BytesPayloadType(), timeout=5) as plain:
        res = plain.get_acq(LO, HI)
        assert not res.is_ok()
    # raw garbage instead of a handshake: the connection is closed
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) as raw:
        raw.sendall(b"\x00" * 64 + b"GET / HTTP/1.1\r\n\r\n")
        raw.settimeout(5)
        assert raw.recv(4096) is not None
    # a client that untrusts the server's certificate fails its handshake
    wrong = ssl.create_default_context()  # system CAs only
    with (
        pytest.raises(ssl.SSLCertVerificationError),
        Channel("127.0.0.1", tls_server.port, BytesPayloadType(), ssl_context=wrong),
    ):
        pass
    assert (
        not Channel("127.0.0.1", tls_server.port, BytesPayloadType(), ssl_context=wrong)
        .connect()
        .is_ok()
    )
    # and a good client is still served
    with Channel(
        "127.0.0.1", tls_server.port, BytesPayloadType(), ssl_context=client_context(tls)
    ) as ch:
        assert ch.get_acq(LO, HI).is_ok()
    assert tls_server.proc.poll() is None


def test_client_certificates_required(data_dir: Path, tls: TlsFiles) -> None:
    proc = _tls_server(data_dir, tls, "--tls-client-ca", str(tls.ca))
    try:
        with Channel(
            "127.0.0.1", proc.port, BytesPayloadType(), ssl_context=client_context(tls), timeout=5
        ) as anonymous:
            assert not anonymous.put([Record(Key(7, 9, 9, 9), b"x")]).is_ok()
        ctx = client_context(tls, with_cert=True)
        with Channel("127.0.0.1", proc.port, BytesPayloadType(), ssl_context=ctx) as ch:
            assert ch.put([Record(Key(7, 9, 9, 9), b"x")]).is_ok()
            assert [r.value for r in ch.get(LO, HI).data] == [b"x"]
    finally:
        proc.stop()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tstorage_server", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tls-cert", "x.pem"], "--tls-cert and --tls-key go together"),
        (["--tls-key", "x.key"], "--tls-cert and --tls-key go together"),
        (["--tls-client-ca", "ca.pem"], "--tls-client-ca needs --tls-cert"),
    ],
)
def test_cli_rejects_incomplete_tls_options(args: list[str], message: str, data_dir: Path) -> None:
    done = _cli("--data-dir", str(data_dir), "--port", "0", *args)
    assert done.returncode == 2
    assert message in done.stderr


def test_cli_names_the_file_it_cannot_load(data_dir: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    done = _cli(
        "--data-dir", str(data_dir), "--port", "0",
        "--tls-cert", str(missing), "--tls-key", str(missing),
    )  # fmt: skip
    assert done.returncode == 2
    assert str(missing) in done.stderr
    assert "listening on" not in done.stdout

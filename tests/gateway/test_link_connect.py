"""A failed connection to TStorage says why (refused, TLS, DNS, timeout) and keeps its cause."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.errors import TStorageUnavailable
from gateway.storage.link import LinkSettings, TStorageLink
from tests._servers import spawn
from tests._tls import make_tls_files

LO, HI = (1, 1, 1, 0), (2, 2, 2, 2**62)


def failure(settings: LinkSettings) -> TStorageUnavailable:
    link = TStorageLink(settings)
    try:
        with pytest.raises(TStorageUnavailable) as info:
            link.get(LO, HI)
    finally:
        link.close()
    return info.value


def test_a_closed_port_is_a_refused_connection() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens
    err = failure(LinkSettings("127.0.0.1", port, timeout=0.5, reconnect_max_delay=0.05))
    assert f"TStorage at 127.0.0.1:{port} is unreachable: connection refused" in str(err)
    assert isinstance(err.__cause__, ConnectionRefusedError)


def test_a_server_certificate_the_client_does_not_trust_is_a_tls_failure(
    tmp_path: Path,
) -> None:
    pki = make_tls_files(tmp_path / "pki")
    argv = ["tstorage-server", "--data-dir", str(tmp_path / "data"), "--port", "0"]
    argv += ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    with spawn(argv) as ts:
        no_ca = ssl.create_default_context()  # the system's CAs only, not the test CA
        err = failure(LinkSettings("127.0.0.1", ts.port, timeout=2.0, ssl_context=no_ca))
        assert ts.proc.poll() is None
    assert "TLS failed: certificate verify failed" in str(err)
    assert isinstance(err.__cause__, ssl.SSLCertVerificationError)


def test_a_name_that_does_not_resolve_is_a_dns_failure() -> None:
    # A name under the reserved .invalid TLD, longer than DNS allows (263 > 255 bytes):
    # the resolver rejects it before sending any query, so no traffic leaves the machine
    # (a short .invalid name would be asked of the configured name server).
    host = ".".join(["a" * 63] * 4) + ".invalid"
    err = failure(LinkSettings(host, 9, timeout=0.5, reconnect_max_delay=0.05))
    assert f"the name {host!r} does not resolve" in str(err)
    assert isinstance(err.__cause__, socket.gaierror)


@pytest.fixture
def never_accepts() -> Iterator[int]:
    """The port of a listening socket whose backlog is full: the kernel drops new SYNs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        f = socket.socket()
        f.setblocking(False)
        f.connect_ex(("127.0.0.1", port))
        fillers.append(f)
    yield port
    for f in fillers:
        f.close()
    listener.close()


def test_a_server_that_never_accepts_is_a_timeout(never_accepts: int) -> None:
    err = failure(LinkSettings("127.0.0.1", never_accepts, timeout=0.5))
    assert "is unreachable: no connection within the timeout (0.5 s)" in str(err)
    assert isinstance(err.__cause__, TimeoutError)

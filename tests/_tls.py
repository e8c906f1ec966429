"""Throw-away TLS material for tests: a CA, a server certificate and a client certificate.

Made with the ``openssl`` command (Debian's, always present where the tests run), valid
for one day, for ``127.0.0.1``/``localhost``.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of one test PKI."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_tls_files(directory: Path) -> TlsFiles:
    """Create a CA and a server and a client certificate signed by it in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-keyout", str(ca_key), "-out", str(ca), "-subj", "/CN=test CA",
    )  # fmt: skip
    ext = directory / "san.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    files = {}
    for name in ("server", "client"):
        key, csr, cert = (directory / f"{name}.{x}" for x in ("key", "csr", "pem"))
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
            "-subj", f"/CN={name}",
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
            "-CAcreateserial", "-days", "1", "-out", str(cert), "-extfile", str(ext),
        )  # fmt: skip
        files[name] = (cert, key)
    return TlsFiles(ca, *files["server"], *files["client"])

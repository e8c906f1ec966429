"""Why a connection to TStorage failed, in words a user can act on.

A refused connection, a failed TLS handshake, a name that does not resolve and a timeout
call for different fixes (start the server, fix ``[tstorage.tls]``, fix ``host``, check
the network), so the link's error names which one it was.
"""

from __future__ import annotations

import socket
import ssl


def connect_failure(exc: BaseException, host: str, timeout: float) -> str:
    """A short phrase saying why connecting to TStorage at ``host`` failed with ``exc``.

    ``timeout`` is the connect timeout in seconds, quoted when the attempt timed out.
    """
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS failed: certificate verify failed ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({exc.reason or exc})"
    if isinstance(exc, socket.gaierror):
        return f"the name {host!r} does not resolve ({exc.strerror})"
    if isinstance(exc, UnicodeError):  # raised before any lookup: not a host name at all
        return f"{host!r} is not a valid host name"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is TStorage running on that port?)"
    if isinstance(exc, TimeoutError):
        return f"no connection within the timeout ({timeout:g} s)"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__

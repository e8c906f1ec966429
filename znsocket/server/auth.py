"""Optional connection authentication with shared tokens.

A client may present its token in any of three places, checked in this order:

1. the socket.io ``auth`` payload ``{"token": "..."}`` (socket.io-client, python-socketio);
2. an ``Authorization: Bearer <token>`` header of the handshake request;
3. a ``token`` query parameter of the handshake URL (upstream clients can send nothing
   else: ``znsocket://host:port/?token=...`` is not possible with them, but a proxy or a
   custom client can add it).

An authenticator is a callable ``(environ, auth) -> principal``: it returns who connected
(any object, handed to the authorization hook) or ``None`` to refuse the connection.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

__all__ = ["TOKENS_ENV_VAR", "Authenticate", "extract_token", "token_authenticator"]

#: Environment variable with comma-separated tokens, read by the CLI.
TOKENS_ENV_VAR = "ZNSOCKET_TOKENS"

Authenticate = Callable[[dict[str, Any], Any], Any]


def extract_token(environ: dict[str, Any], auth: Any) -> str | None:
    """The token a client presented, or ``None``.

    Args:
        environ: The WSGI environ of the handshake request.
        auth: The socket.io ``auth`` payload of the namespace connection.
    """
    if isinstance(auth, dict):
        token = auth.get("token")
        if isinstance(token, str):
            return token
    header = environ.get("HTTP_AUTHORIZATION", "")
    if isinstance(header, str) and header[:7].lower() == "bearer ":
        return header[7:].strip()
    values = parse_qs(environ.get("QUERY_STRING", "")).get("token")
    return values[0] if values else None


def token_authenticator(tokens: Iterable[str]) -> Authenticate:
    """Accept clients presenting one of ``tokens``.

    The principal is ``"token-<n>"`` (the position of the matching token), so the secret
    itself is never handed around or logged.

    Args:
        tokens: Accepted tokens (empty strings are ignored).

    Raises:
        ValueError: If no non-empty token is given.
    """
    accepted = [t.encode() for t in tokens if t]
    if not accepted:
        raise ValueError("token authentication needs at least one non-empty token")

    def authenticate(environ: dict[str, Any], auth: Any) -> str | None:
        presented = extract_token(environ, auth)
        if presented is None:
            return None
        given = presented.encode()
        match = None
        for position, token in enumerate(accepted):
            # compare against every token so timing does not tell which one matched
            if hmac.compare_digest(given, token) and match is None:
                match = f"token-{position}"
        return match

    return authenticate

"""Token authentication and per-key authorisation from the ``[auth]`` section.

A client presents a token (socket.io ``auth={"token": ...}``, an ``Authorization: Bearer``
header or a ``token`` query parameter, see :func:`znsocket.server.auth.extract_token`); the
principal is the matching :class:`~gateway.config.TokenConfig`. Every command is then
checked: ``read`` tokens may only run commands that change nothing, and every key a
command names must match one of the token's ``keys`` globs (matched against the
user-visible key, i.e. without the ``znsocket.List:``-style prefix).
"""

from __future__ import annotations

import fnmatch
import hmac
from collections.abc import Callable, Sequence
from typing import Any

from gateway.config import AuthConfig, TokenConfig
from gateway.storage.generic import WRITES
from znsocket.exceptions import PermissionDeniedError
from znsocket.server.auth import extract_token

_PREFIXES = ("znsocket.List:", "znsocket.Dict:", "znsocket.Segments:")
#: Events and commands that change data (beyond the storage commands in ``WRITES``).
WRITE_EVENTS = frozenset(WRITES) | {"flushall", "refresh", "register_adapter"}
_ALL_KEYS = {"flushall"}
_MULTI_KEY = {"delete", "exists", "mget"}
# Asking whether an adapter exists reveals no data; clients ask it when building any proxy.
_UNCHECKED = {"check_adapter", "adapter_exists"}


def user_key(key: str) -> str:
    """The key without znsocket's object prefix."""
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def _keys_of(command: str, args: Sequence[Any], kwargs: dict[str, Any]) -> list[str]:
    if command in _MULTI_KEY:
        names: list[Any] = []
        for a in args:
            names.extend(a if isinstance(a, (list, tuple)) else [a])
        return [str(n) for n in names]
    if command in ("copy", "smove"):
        return [str(a) for a in args[:2]]
    if command == "refresh":
        return [str(kwargs.get("target", ""))]
    if args:
        return [str(args[0])]
    for field in ("name", "key", "target"):
        if field in kwargs:
            return [str(kwargs[field])]
    return []


class TokenPolicy:
    """The authenticator and the authorisation hook for the znsocket server."""

    def __init__(self, auth: AuthConfig) -> None:
        self._tokens: list[tuple[bytes, TokenConfig]] = []
        for token in auth.tokens:
            secret = token.secret()
            if secret is None:
                raise ValueError(
                    f"environment variable {token.env} of token {token.name!r} is not set"
                )
            self._tokens.append((secret.encode(), token))

    def authenticate(self, environ: dict[str, Any], auth: Any) -> TokenConfig | None:
        """The token's configuration for a connecting client, or ``None`` to refuse it."""
        presented = extract_token(environ, auth)
        if presented is None:
            return None
        given = presented.encode()
        match = None
        for secret, token in self._tokens:
            # compare with every token so timing does not tell which one matched
            if hmac.compare_digest(given, secret) and match is None:
                match = token
        return match

    def authorize(
        self, principal: Any, command: str, args: list[Any], kwargs: dict[str, Any]
    ) -> None:
        """Raise :class:`PermissionDeniedError` unless ``principal`` may run the command."""
        if not isinstance(principal, TokenConfig):
            raise PermissionDeniedError("not authenticated")
        if command in WRITE_EVENTS and principal.access != "read-write":
            raise PermissionDeniedError(
                f"token {principal.name!r} is read-only; {command} changes data"
            )
        if command in _UNCHECKED:
            return
        if command in _ALL_KEYS:
            if principal.keys != ["*"]:
                raise PermissionDeniedError(
                    f"token {principal.name!r} may not {command}: it is limited to some keys"
                )
            return
        for key in _keys_of(command, args, kwargs):
            visible = user_key(key)
            if not any(fnmatch.fnmatchcase(visible, pattern) for pattern in principal.keys):
                raise PermissionDeniedError(
                    f"token {principal.name!r} may not touch key {visible!r}"
                )


def policy_hooks(auth: AuthConfig) -> tuple[Callable[..., Any] | None, Callable[..., None] | None]:
    """``(authenticate, authorize)`` for :func:`znsocket.server.create_app` (``None`` when off)."""
    if not auth.enabled:
        return None, None
    policy = TokenPolicy(auth)
    return policy.authenticate, policy.authorize

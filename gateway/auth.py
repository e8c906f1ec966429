"""Token authentication and per-key authorisation from the ``[auth]`` section.

A client presents a token (socket.io ``auth={"token": ...}``, an ``Authorization: Bearer``
header or a ``token`` query parameter, see :func:`znsocket.server.auth.extract_token`); the
principal is the matching :class:`~gateway.config.TokenConfig`. Every command and every
key-naming event is then checked against the command specs
(:mod:`znsocket.storage.spec`):

* the call's arguments are bound as the storage method binds them, so a key passed by
  position, by keyword, in a list argument, in a pipeline, a compressed or a chunked
  message is the same key; arguments that cannot be bound are refused (``TypeError``);
* ``read`` tokens may only run commands and events that change nothing;
* every key the call names (each field of an event that may name one) must match one of
  the token's ``keys`` globs, matched against the user-visible key, i.e. without the
  ``znsocket.List:``-style prefix; ``flushall`` needs a token whose globs include ``*``;
* anything else a client may send and that is not a command or such an event is refused.

:class:`TokenPolicy` is also the server's refresh audience
(:class:`~znsocket.server.audience.Audience`): a client receives a ``refresh`` only if its
token may read the target.
"""

from __future__ import annotations

import fnmatch
import hmac
import json
from collections.abc import Callable, Sequence
from typing import Any

from gateway.config import AuthConfig, TokenConfig
from gateway.keymap import user_key
from gateway.storage.generic import key_name
from znsocket.exceptions import PermissionDeniedError
from znsocket.server.audience import Audience
from znsocket.server.auth import extract_token
from znsocket.storage.spec import COMMAND_SPECS, EVENT_SPECS, spec_of

#: Commands and events every call of which changes data: a ``read`` token may not send
#: them (nor an ``adapter:get`` that makes an adapter owner copy to a ``target``).
WRITE_EVENTS = frozenset(
    name for specs in (COMMAND_SPECS, EVENT_SPECS) for name, spec in specs.items() if spec.writes
)
_ROOM_PREFIX = "gateway-keys:"


def _matches(globs: Sequence[str], key: str) -> bool:
    visible = user_key(key)
    return any(fnmatch.fnmatchcase(visible, pattern) for pattern in globs)


def _room(globs: Sequence[str]) -> str:
    # named by the globs themselves, so a room means the same on every gateway
    return _ROOM_PREFIX + json.dumps(sorted(set(globs)))


class TokenPolicy:
    """The authenticator, the authorisation hook and the refresh audience of the server."""

    def __init__(self, auth: AuthConfig) -> None:
        self._tokens: list[tuple[bytes, TokenConfig]] = []
        for token in auth.tokens:
            secret = token.secret()
            if secret is None:
                raise ValueError(
                    f"environment variable {token.env} of token {token.name!r} is not set"
                )
            self._tokens.append((secret.encode(), token))
        self._scopes = {_room(t.keys): t.keys for _, t in self._tokens}

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
        """Raise unless ``principal`` may run the command or event.

        Raises:
            PermissionDeniedError: not authenticated, a read-only token and a change, a
                key outside the token's globs, or a name that is neither a command nor
                a key-naming event.
            TypeError: the arguments do not fit the command (nothing was run).
            DataError: a key of a type no key can have (a list, ``None``, ...).
        """
        if not isinstance(principal, TokenConfig):
            raise PermissionDeniedError("not authenticated")
        spec = spec_of(command)
        if spec is None:
            raise PermissionDeniedError(f"token {principal.name!r} may not send {command!r}")
        keys = spec.keys_of(args, kwargs)
        if principal.access != "read-write" and spec.changes(keys):
            raise PermissionDeniedError(
                f"token {principal.name!r} is read-only; {command} changes data"
            )
        if spec.all_keys and "*" not in principal.keys:
            raise PermissionDeniedError(
                f"token {principal.name!r} may not {command}: it is limited to some keys"
            )
        for key, _access in keys:
            name = key_name(key)
            if not _matches(principal.keys, name):
                raise PermissionDeniedError(
                    f"token {principal.name!r} may not touch key {user_key(name)!r}"
                )

    # ---------------------------------------------------------- refresh audience
    def room(self, principal: Any) -> str | None:
        """The room of a connection: one per set of key globs."""
        return _room(principal.keys) if isinstance(principal, TokenConfig) else None

    def rooms(self, target: str) -> list[str]:
        """The rooms whose tokens may read ``target``."""
        return [room for room, globs in self._scopes.items() if _matches(globs, target)]


def policy_hooks(
    auth: AuthConfig,
) -> tuple[Callable[..., Any] | None, Callable[..., None] | None, Audience | None]:
    """``(authenticate, authorize, audience)`` for :func:`znsocket.server.create_app`
    (all ``None`` when auth is off)."""
    if not auth.enabled:
        return None, None, None
    policy = TokenPolicy(auth)
    return policy.authenticate, policy.authorize, policy

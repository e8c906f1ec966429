"""Event payload shapes: the ``[args, kwargs]`` request and the acknowledgement envelopes.

Request (spec §2.2): every command event carries one data argument, a two-element list
``[args, kwargs]`` with ``args`` a list and ``kwargs`` an object with string keys.

Acknowledgements (spec §2.3, §2.4)::

    {"data": <value>}                        success
    {"data": [<members>], "type": "set"}     success, the value was a set
    {"error": {"msg": "<text>", "type": "<ExceptionClassName>"}}

Strategy: the server builds envelopes with :func:`success_envelope` /
:func:`error_envelope`; a client reads them with :func:`raise_for_error` and
:func:`unwrap_data`. Nothing here touches a socket.
"""

from __future__ import annotations

from typing import Any

from znsocket.exceptions import ZnSocketError, exception_for

Envelope = dict[str, Any]
CallPayload = tuple[list[Any], dict[str, Any]]

__all__ = [
    "CallPayload",
    "Envelope",
    "error_envelope",
    "error_envelope_for",
    "make_call_payload",
    "parse_call_payload",
    "raise_for_error",
    "success_envelope",
    "unwrap_data",
    "unwrap_response",
]


def make_call_payload(args: Any = (), kwargs: dict[str, Any] | None = None) -> list[Any]:
    """Build the ``[args, kwargs]`` data argument of a command event.

    Args:
        args: Positional arguments (a tuple becomes a JSON array).
        kwargs: Keyword arguments.

    Returns:
        ``[list(args), dict(kwargs)]``.
    """
    return [list(args), dict(kwargs or {})]


def parse_call_payload(data: Any) -> CallPayload:
    """Validate the ``[args, kwargs]`` data argument of a command event.

    Args:
        data: The decoded event argument.

    Returns:
        ``(args, kwargs)`` with ``args`` a list and ``kwargs`` a dict.

    Raises:
        ValueError: If the payload has any other shape; the text says what is wrong.
            (Keyword names are not checked here: a name the command does not take fails
            as a ``TypeError`` at the call, as upstream.)
    """
    if not isinstance(data, (list, tuple)) or len(data) != 2:
        raise ValueError("payload must be a two-element list [args, kwargs]")
    args, kwargs = data
    if not isinstance(args, (list, tuple)):
        raise ValueError("args (payload element 0) must be a list")
    if not isinstance(kwargs, dict):
        raise ValueError("kwargs (payload element 1) must be an object")
    return list(args), kwargs


def success_envelope(value: Any) -> Envelope:
    """Wrap a command result: ``{"data": value}``, sets as ``{"data": [...], "type": "set"}``.

    Args:
        value: The storage command's return value.
    """
    if isinstance(value, (set, frozenset)):
        return {"data": list(value), "type": "set"}
    return {"data": value}


def error_envelope(type_name: str, msg: str) -> Envelope:
    """Build ``{"error": {"msg": msg, "type": type_name}}``.

    Args:
        type_name: Exception class name as known to clients (e.g. ``"ResponseError"``).
        msg: Error text.
    """
    return {"error": {"msg": msg, "type": type_name}}


def error_envelope_for(exc: BaseException, event: str) -> Envelope:
    """Build the error envelope for an exception raised by command ``event``.

    ``TypeError`` gets upstream's prefix ``Invalid arguments for <event>: ``; every other
    exception keeps ``str(exc)`` and its class name.

    Args:
        exc: The exception.
        event: The command that raised it.
    """
    if isinstance(exc, TypeError):
        return error_envelope("TypeError", f"Invalid arguments for {event}: {exc}")
    return error_envelope(type(exc).__name__, str(exc))


def raise_for_error(result: Any) -> None:
    """Raise the mapped exception if ``result`` is an error envelope (upstream ``handle_error``).

    Does nothing unless ``result`` is a dict with an ``"error"`` key.

    Raises:
        Exception: ``DataError``, ``TypeError``, ``IndexError``, ``KeyError``,
            ``UnknownEventError``, ``ResponseError`` or ``ZnSocketError`` (spec §2.5).
    """
    if isinstance(result, dict) and "error" in result:
        error = result["error"]
        raise exception_for(error.get("type"), error.get("msg", "Unknown error"))


def unwrap_data(envelope: Envelope) -> Any:
    """Return the value of a success envelope, turning ``"type": "set"`` into a ``set``.

    Raises:
        TypeError: For any other ``type`` value.
    """
    if "type" in envelope:
        if envelope["type"] == "set":
            return set(envelope["data"])
        raise TypeError(f"Can not convert type '{envelope['type']}'")
    return envelope["data"]


def unwrap_response(response: Any) -> Any:
    """Map errors, then unwrap: what a client returns for one command acknowledgement.

    Raises:
        ZnSocketError: ``No response from server`` for a missing acknowledgement.
        Exception: The mapped exception of an error envelope.
    """
    if response is None:
        raise ZnSocketError("No response from server")
    raise_for_error(response)
    return unwrap_data(response)

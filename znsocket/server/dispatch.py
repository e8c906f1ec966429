"""Command dispatch: event payloads in, acknowledgement envelopes out; no sockets.

:class:`Dispatcher` holds everything the server does between "an event arrived" and "send
this acknowledgement" for the storage-facing events: plain commands, ``pipeline``,
``compressed_message``, ``chunked_message`` and ``get_chunked_result``. The socket.io
wiring (:mod:`znsocket.server.app`) stays a thin layer on top of it.

Strategy:

* Only names in :data:`~znsocket.storage.base.COMMANDS` reach the storage, through a table
  of bound methods built once (:func:`~znsocket.storage.base.command_table`); everything
  else - dunders, private attributes, redis-py client methods - gets an
  ``UnknownEventError`` envelope and touches nothing.
* Errors never escape: a malformed payload, wrong argument types, a refused authorization
  or a storage error all become error envelopes (spec §2.4), so every request is answered.
* An optional authorization hook ``(principal, command, args, kwargs)`` runs before each
  command (and each command of a pipeline); raising refuses the command.
* A compressed or chunked message is only unwrapped here (:meth:`Dispatcher.decompress`,
  :meth:`Dispatcher.chunk`); the call it carries is routed by the server's
  :class:`~znsocket.server.routing.RouteTable`, so it reaches exactly what the same event
  sent plain reaches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from znsocket.exceptions import DeserializationError, ZnSocketError
from znsocket.protocol.chunks import (
    Assembled,
    ChunkAssembler,
    ChunkLimits,
    parse_chunk,
)
from znsocket.protocol.events import Event
from znsocket.protocol.framing import DEFAULT_MAX_DECODED_BYTES, decode_buffer
from znsocket.protocol.payload import Envelope, error_envelope, parse_call_payload
from znsocket.storage.base import CommandCall, StorageCommands, command_table

__all__ = ["Authorize", "Dispatcher", "malformed"]

#: ``(principal, command, args, kwargs) -> None``; raise (e.g. PermissionDeniedError) to refuse.
Authorize = Callable[[Any, str, list[Any], dict[str, Any]], None]


def malformed(event: str, detail: str) -> Envelope:
    """The envelope for an event whose payload has the wrong shape."""
    return error_envelope("MalformedMessageError", f"Malformed message for {event}: {detail}")


def _unknown(event: str) -> Envelope:
    return {"error": {"msg": f"Unknown event: {event}", "type": "UnknownEventError"}}


def _error(exc: BaseException, event: str) -> Envelope:
    if isinstance(exc, TypeError):
        return {"error": {"msg": f"Invalid arguments for {event}: {exc}", "type": "TypeError"}}
    return {"error": {"msg": str(exc), "type": type(exc).__name__}}


class Dispatcher:
    """Runs storage-facing events against one storage.

    Args:
        storage: Any object implementing :class:`~znsocket.storage.base.StorageCommands`.
        authorize: Optional per-command authorization hook.
        chunk_limits: Bounds on chunked-message reassembly.
        max_decoded_bytes: Largest JSON text accepted from a compressed or chunked message.
        pause: Called between decompression steps of a large message, to let other
            connections run (the server passes a zero-second green sleep).
    """

    def __init__(
        self,
        storage: object,
        *,
        authorize: Authorize | None = None,
        chunk_limits: ChunkLimits | None = None,
        max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
        pause: Callable[[], None] | None = None,
    ) -> None:
        self.storage = storage
        self.pause = pause
        self.commands = command_table(storage)
        self.authorize = authorize
        self.chunks = ChunkAssembler(chunk_limits)
        self.max_decoded_bytes = max_decoded_bytes
        # a backend may batch a pipeline into one round trip (RedisStorage does); the
        # interface's sequential default is run here, without a getattr per command
        runner = getattr(storage, "execute_many", None)
        inherited = getattr(type(storage), "execute_many", None) is StorageCommands.execute_many
        self._execute_many: Callable[[list[CommandCall]], list[Any]] | None = (
            runner if callable(runner) and not inherited else None
        )

    # ------------------------------------------------------------ commands
    def command(self, principal: Any, event: str, data: Any) -> Envelope:
        """Answer a command event (``data`` is the raw ``[args, kwargs]`` payload)."""
        fn = self.commands.get(event)
        if fn is None:
            return _unknown(event)
        if (
            type(data) is list
            and len(data) == 2
            and type(data[0]) is list
            and type(data[1]) is dict
        ):
            args, kwargs = data
        else:
            try:
                args, kwargs = parse_call_payload(data)
            except ValueError as exc:
                return malformed(event, str(exc))
        try:
            if self.authorize is not None:
                self.authorize(principal, event, args, kwargs)
            result = fn(*args, **kwargs)
        except Exception as exc:
            return _error(exc, event)
        if type(result) is set:
            return {"data": list(result), "type": "set"}
        return {"data": result}

    def pipeline(self, principal: Any, data: Any) -> Envelope:
        """Answer a ``pipeline`` event: ``[[], {"message": [[name, [args, kwargs]], ...]}]``.

        Commands run in order; the first failing one stops the pipeline and its error
        envelope is the whole answer (commands before it stay applied), as upstream.
        """
        try:
            _args, kwargs = parse_call_payload(data)
        except ValueError as exc:
            return malformed(Event.PIPELINE, str(exc))
        message = kwargs.get("message")
        if not isinstance(message, list):
            return malformed(Event.PIPELINE, "kwargs.message must be a list of commands")
        commands = self.commands
        authorize = self.authorize
        calls: list[CommandCall] = []
        stop: Envelope | None = None
        append_call = calls.append
        for entry in message:
            if not (type(entry) is list and len(entry) == 2 and type(entry[0]) is str):
                # every earlier entry became a call, so its position is len(calls)
                stop = malformed(
                    Event.PIPELINE, f"command {len(calls)} must be [name, [args, kwargs]]"
                )
                break
            name, payload = entry
            if name not in commands:
                stop = _unknown(name)
                break
            if (
                type(payload) is list
                and len(payload) == 2
                and type(payload[0]) is list
                and type(payload[1]) is dict
            ):
                args, kw = payload
            else:
                try:
                    args, kw = parse_call_payload(payload)
                except ValueError as exc:
                    stop = malformed(name, str(exc))
                    break
            if authorize is not None:
                try:
                    authorize(principal, name, args, kw)
                except Exception as exc:
                    stop = _error(exc, name)
                    break
            append_call((name, args, kw))
        envelopes: list[Envelope]
        if self._execute_many is not None:
            results = self._execute_many(calls) if calls else []
            # by the interface's contract only the last result can be an exception
            if results and isinstance(results[-1], Exception):
                return _error(results[-1], calls[len(results) - 1][0])
            envelopes = [
                {"data": list(r), "type": "set"}
                if type(r) is set or type(r) is frozenset
                else {"data": r}
                for r in results
            ]
        else:
            envelopes = []
            append = envelopes.append
            for name, args, kw in calls:
                try:
                    result = commands[name](*args, **kw)
                except Exception as exc:
                    return _error(exc, name)
                append(
                    {"data": list(result), "type": "set"}
                    if type(result) is set
                    else {"data": result}
                )
        if stop is not None:
            return stop
        return {"data": envelopes}

    # ------------------------------------------------------ large messages
    def decompress(self, data: Any) -> tuple[str, Any] | Envelope:
        """Unwrap ``compressed_message``: ``{"event": name, "data": <flagged buffer>}``.

        Returns:
            The call it carries, ``(event, [args, kwargs])``, or an error envelope.
        """
        if not isinstance(data, dict) or not isinstance(data.get("event"), str):
            return malformed(
                Event.COMPRESSED_MESSAGE, 'payload must be {"event": str, "data": bytes}'
            )
        try:
            args, kwargs = decode_buffer(
                data.get("data"),  # type: ignore[arg-type]
                max_decoded_bytes=self.max_decoded_bytes,
                pause=self.pause,
            )
        except DeserializationError as exc:
            return error_envelope("DeserializationError", str(exc))
        return data["event"], [args, kwargs]

    def chunk(self, owner: str, data: Any, now: float) -> tuple[str, Any, Assembled] | Envelope:
        """Take one ``chunked_message``.

        Args:
            owner: The connection id; chunk state is private to it.
            data: The chunk payload.
            now: The current monotonic time in seconds.

        Returns:
            Once the last chunk arrived, the call it completes, ``(event, [args, kwargs],
            progress)``: run it, then :meth:`keep_result`. Otherwise the chunk's answer
            (progress, or an error envelope; a message that fails to decode keeps its
            error for ``get_chunked_result``).
        """
        try:
            chunk = parse_chunk(data)
            progress = self.chunks.receive(owner, chunk, now)
        except ZnSocketError as exc:
            return error_envelope(type(exc).__name__, str(exc))
        if not isinstance(progress, Assembled):
            return progress.ack()
        try:
            args, kwargs = decode_buffer(
                progress.buffer, max_decoded_bytes=self.max_decoded_bytes, pause=self.pause
            )
        except DeserializationError as exc:
            return self.keep_result(
                owner, progress, error_envelope("DeserializationError", str(exc))
            )
        return progress.event, [args, kwargs], progress

    def keep_result(self, owner: str, progress: Assembled, result: Any) -> Envelope:
        """Keep the answer of a chunked message for ``get_chunked_result``; return the
        answer to its last chunk."""
        self.chunks.set_result(owner, progress.chunk_id, result)
        return progress.ack()

    def chunked_result(self, owner: str, data: Any) -> Any:
        """Answer ``get_chunked_result``: ``{"chunk_id": id}`` -> the stored result, once."""
        chunk_id = data.get("chunk_id") if isinstance(data, dict) else None
        try:
            return self.chunks.take_result(owner, chunk_id)
        except ZnSocketError as exc:
            return error_envelope(type(exc).__name__, str(exc))

    def forget(self, owner: str) -> None:
        """Drop the chunk state of a connection that went away."""
        self.chunks.discard_owner(owner)

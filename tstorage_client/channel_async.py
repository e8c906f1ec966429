"""Asyncio module based TStorage communication channel."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, TypeVar

from ._channel_common import LentMemory, ReceiveBuffer, _ChannelMixin
from ._commands import Flow, GetMode, _Close, _Emit, _Recv, _RecvInto, _Send
from .errors import ConnectionClosed, Timeout, TransportError
from .payload_type import PayloadType
from .record import Key, Record
from .records_set import GetCallback, RecordsSet
from .response import Response, ResponseAcq, ResponseGet, ResponseStatus

__all__ = ["AsyncChannel"]

T = TypeVar("T")
R = TypeVar("R")


class AsyncChannel(_ChannelMixin[T]):
    """AsyncChannel provides TStorage communication facilities using asyncio module.

    AsyncChannel can be used as async context manager to open and close connection. All
    put and fetched data should be serializable by passed payload_type. AsyncChannel
    doesn't provide timeout: wrap calls with :func:`asyncio.timeout` /
    :func:`asyncio.wait_for` (a cancelled call leaves the channel closed).

    Args:
        host: TStorage hostname.
        port: TStorage port.
        payload_type: Data converter of this AsyncChannel.
        memory_limit: Max memory for GET requests in bytes (None = unlimited).
        ssl_context: Wrap the connection in TLS with this context.
    """

    def __init__(
        self,
        host: str,
        port: int,
        payload_type: PayloadType[T],
        memory_limit: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._payload_type = payload_type
        self._memory_limit = memory_limit
        self._ssl_context = ssl_context
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @property
    def memory_limit(self) -> int | None:
        """Get or set memory limit in bytes for GET requests."""
        return self._memory_limit

    @memory_limit.setter
    def memory_limit(self, value: int | None) -> None:
        self._memory_limit = value

    def _is_connected(self) -> bool:
        return self._writer is not None

    # --- connection ----------------------------------------------------------------------

    async def connect(self) -> Response:
        """Connect to specified host at port.

        Returns:
            OK status if connected else ERROR status.
        """
        try:
            await self.__aenter__()
        except Exception:
            return Response(ResponseStatus.ERROR)
        return Response(ResponseStatus.OK)

    async def close(self) -> Response:
        """Close underlying connection.

        Returns:
            OK status if closed connection else ERROR status (not connected).
        """
        writer, self._writer, self._reader = self._writer, None, None
        if writer is None:
            return Response(ResponseStatus.ERROR)
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            pass
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
        return Response(ResponseStatus.OK)

    def _abort(self) -> None:
        """Close without waiting (used when a call is cancelled mid-request)."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()

    async def __aenter__(self) -> AsyncChannel[T]:
        """Connect (a connection left open earlier is closed first).

        Raises:
            OSError: Whatever ``asyncio.open_connection`` raises.
        """
        if self._writer is not None:
            await self.close()
        self._reader, self._writer = await asyncio.open_connection(
            self._host, self._port, ssl=self._ssl_context, limit=1 << 22
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # --- the driver ----------------------------------------------------------------------

    # The three seams below keep the official client's private names, so code (and its
    # unit tests) that patch them keep working.

    async def _send_data(self, data: bytes | bytearray | memoryview) -> None:
        if self._writer is None:
            raise ConnectionClosed("channel closed")
        self._writer.write(data)
        await self._writer.drain()

    async def _feed_buffer(self, buffer: ReceiveBuffer, limit: int = 0) -> int:
        if self._reader is None:
            raise ConnectionClosed("channel closed")
        free = buffer.free_len()
        data = await self._reader.read(min(limit, free) if limit else free)
        buffer.feed(data)
        return len(data)

    async def _early_close(self, response: R) -> R:
        await self.close()
        return response

    async def _io(self, op: _Send | _Recv | _RecvInto) -> Any:
        if type(op) is _RecvInto:
            # asyncio streams hand out bytes: one more copy than the socket driver makes
            return await self._feed_buffer(LentMemory(op.buffer))
        if type(op) is _Recv:
            buffer = ReceiveBuffer(op.max_bytes)
            count = await self._feed_buffer(buffer, op.max_bytes)
            return bytes(buffer.peek(count))
        await self._send_data(op.data)  # type: ignore[union-attr]
        return None

    async def _perform(self, op: Any) -> tuple[Any, TransportError | None]:
        """Perform one I/O op; returns its value or the transport error to throw."""
        try:
            return await self._io(op), None
        except asyncio.CancelledError:
            self._abort()  # the stream is out of step with the protocol now
            raise
        except (OSError, asyncio.IncompleteReadError) as exc:
            if isinstance(exc, TimeoutError):
                return None, Timeout(str(exc) or "timed out")
            return None, ConnectionClosed(str(exc) or type(exc).__name__)
        except TransportError as exc:
            return None, exc

    async def _run(self, flow: Flow[R]) -> R:
        try:
            op = next(flow)
            while True:
                if type(op) is _Close:
                    await self._early_close(None)
                    value, error = None, None
                else:
                    value, error = await self._perform(op)
                op = flow.throw(error) if error is not None else flow.send(value)
        except StopIteration as stop:
            return stop.value

    async def _run_iter(self, flow: Flow[Any]) -> AsyncIterator[Any]:
        try:
            op = next(flow)
            while True:
                if type(op) is _Emit:
                    try:
                        for item in op.items:
                            yield item
                    except GeneratorExit:
                        # Abandoned mid-response: the rest of it is still on the wire,
                        # so the connection can no longer be used.
                        self._abort()
                        raise
                    value, error = None, None
                elif type(op) is _Close:
                    await self._early_close(None)
                    value, error = None, None
                else:
                    value, error = await self._perform(op)
                op = flow.throw(error) if error is not None else flow.send(value)
        except StopIteration as stop:
            yield stop.value

    # --- commands --------------------------------------------------------------------------

    async def put(
        self, data: RecordsSet[T], max_batch_size: int = 2147483647, skip_invalid: bool = False
    ) -> Response:
        """Put records to TStorage without acq value (the server assigns it).

        Args:
            data: Records to put (with NumpyPayloadType: a structured array or a dict of arrays).
            max_batch_size: Controls maximal serialization buffer size. Must be lower than
                2147483648 (2GiB). Despite this value always at least 1 record will be serialized.
            skip_invalid: Skip invalid records (cid < 0). Otherwise the put stops before the
                first group of invalid records; the groups before it are stored.

        Returns:
            OK status on success else status indicates error.
        """
        return await self._run(self._put_flow(data, False, max_batch_size, skip_invalid))

    async def puta(
        self, data: RecordsSet[T], max_batch_size: int = 2147483647, skip_invalid: bool = False
    ) -> Response:
        """Put records to TStorage with acq value.

        Args:
            data: Records to put (with NumpyPayloadType: a structured array or a dict of arrays).
            max_batch_size: Controls maximal serialization buffer size. Must be lower than
                2147483648 (2GiB). Despite this value always at least 1 record will be serialized.
            skip_invalid: Skip invalid records (cid < 0). Otherwise the puta stops before
                the first group of invalid records; the groups before it are stored.

        Returns:
            OK status on success else status indicates error.
        """
        return await self._run(self._put_flow(data, True, max_batch_size, skip_invalid))

    async def get_acq(self, key_min: Key, key_max: Key) -> ResponseAcq:
        """Get last acq value from TStorage.

        Args:
            key_min: Lower end of keyrange (inclusive).
            key_max: Upper end of keyrange (exclusive).

        Returns:
            OK status, acq on success else status indicates error and acq is invalid.
        """
        return await self._run(self._get_acq_flow(key_min, key_max))

    async def get(
        self, key_min: Key, key_max: Key, recv_buffer_size: int = 65536
    ) -> ResponseGet[T]:
        """Get records from TStorage.

        Records are get up to memory_limit and request fails if there is more data.
        If request fails at some point it automatically closes connection.

        Args:
            key_min: Lower end of keyrange (inclusive).
            key_max: Upper end of keyrange (exclusive).
            recv_buffer_size: Initial buffer size for receiving data from network capped by self.memory_limit.

        Returns:
            OK status, acq, data on success else status indicates error, data stores partial result and acq is invalid.
        """
        return await self._run(self._get_flow(key_min, key_max, recv_buffer_size, GetMode.GET))

    async def get_stream(
        self, key_min: Key, key_max: Key, callback: GetCallback[T], recv_buffer_size: int = 65536
    ) -> ResponseAcq:
        """Get records from TStorage.

        Records are get in memory_limit sized batches; the callback gets each non-empty
        batch (a new list each time). If request fails at some point it automatically
        closes connection.

        Args:
            key_min: Lower end of keyrange (inclusive).
            key_max: Upper end of keyrange (exclusive).
            callback: Callable to call on each batch.
            recv_buffer_size: Initial buffer size for receiving data from network capped by self.memory_limit.

        Returns:
            OK status, acq on success else status indicates error and acq is invalid.
        """
        return await self._run(
            self._get_flow(key_min, key_max, recv_buffer_size, GetMode.STREAM, callback)
        )

    def get_iter(
        self, key_min: Key, key_max: Key, recv_buffer_size: int = 65536
    ) -> AsyncIterator[Record[T] | ResponseAcq]:
        """Get records from TStorage as iterator.

        If request fails at some point it automatically closes connection.
        Records are yielded after whole batch parsing has been done.
        Remember to check for final response with OK status.

        Args:
            key_min: Lower end of keyrange (inclusive).
            key_max: Upper end of keyrange (exclusive).
            recv_buffer_size: Initial buffer size for receiving data from network capped by self.memory_limit.

        Yields:
            Record or response control data indicating error or successfully finished request.
        """
        return self._run_iter(self._get_flow(key_min, key_max, recv_buffer_size, GetMode.ITER))

"""The sans-IO TStorage protocol core, for both roles (client and server).

No sockets, no asyncio, no threads, no clocks: bytes in, events out; events in, bytes out.
:class:`~tstorage_client.channel.Channel`, :class:`~tstorage_client.channel_async.AsyncChannel`
and the TStorage server all drive this module.

Byte layout (little-endian, packed; see the protocol specification)::

    request header    int32 cmd, uint64 size                  12 B   cmd 1 GET, 5 PUT, 6 PUTA, 7 GET_ACQ
    response header   int32 status, uint64 size               12 B   status 0 = OK
    key               int32 cid, int64 mid, int32 moid,
                      int64 cap, int64 acq                    32 B
    GET / GET_ACQ     (cmd, 64) key_min key_max               76 B
    PUT / PUTA        (cmd, 0) {int32 cid>=0, int32 batch_bytes, records} int32 -1
      PUT record      int32 n=20+len(p), int64 mid, int32 moid, int64 cap, p
      PUTA record     int32 n=28+len(p), int64 mid, int32 moid, int64 cap, int64 acq, p
    GET response      (0, 0) {int32 n=32+len(p), key, p} int32 0 (0, 8) int64 acq
    GET_ACQ response  (0, 8) int64 acq                        20 B
    PUT response      (0, 16) int64 acq_min int64 acq_max      28 B
    errors            GET: (0,0) int32 0 (-1,0) + 8 zero bytes; GET_ACQ: (-1,0) + 8 zero
                      bytes; PUT/PUTA and unknown commands: (-1,0)

Server role (columnar, numpy imported lazily)::

    from tstorage_client import events as ev
    from tstorage_client.errors import RemoteProtocolError
    from tstorage_client.protocol import ServerConnection, NEED_DATA

    conn = ServerConnection(max_buffer_size=64 * 2**20)
    while True:
        try:
            event = conn.next_event()
        except RemoteProtocolError:
            sock.sendall(conn.send_error())      # right error shape for the request
            break                                # ...then close the connection
        if event is NEED_DATA:
            conn.receive_data(sock.recv(262144))  # b"" = EOF
        elif isinstance(event, ev.EndOfStream):
            break
        elif isinstance(event, ev.GetRequest):
            sock.sendall(conn.send(ev.GetStart()))
            for block in store.select(event.key_min, event.key_max):   # RecordBlock
                sock.sendall(conn.send(ev.GetRecords(block)))
            sock.sendall(conn.send(ev.GetEnd(acq=min(event.key_max.acq, watermark))))
        elif isinstance(event, ev.GetAcqRequest):
            sock.sendall(conn.send(ev.AcqResult(acq=...)))
        elif isinstance(event, ev.PutRequest):
            pending = []                         # event.with_acq: PUTA
        elif isinstance(event, ev.PutBatch):
            pending.append(event.block)          # may span several wire batches
        elif isinstance(event, ev.PutEnd):
            store.commit(RecordBlock.concat(pending))
            sock.sendall(conn.send(ev.PutResult(acq_min, acq_max)))

Client role::

    conn = ClientConnection(ObjectRecordDecoder(payload_type))
    sock.sendall(conn.send(ev.GetRequest(kmin, kmax)))
    # feed conn.receive_data(...) until next_event() gives GetStart, RecordsBatch..., GetEnd
    # or, copying each byte once (fixed-size numpy records land in the result arrays):
    #     conn.received(sock.recv_into(conn.receive_buffer()))

PUT streams are encoded by :func:`encode_put_batches` (objects) or :func:`encode_put_block`
(columnar), framed by ``conn.send(PutRequest(...))`` and ``conn.send(PutEnd())``.

Modules, one idea each: :mod:`~tstorage_client.protocol.wire` (commands, structs, sizes),
:mod:`~tstorage_client.protocol.put_encode` and :mod:`~tstorage_client.protocol.get_decode`
(client role), :mod:`~tstorage_client.protocol.put_decode`,
:mod:`~tstorage_client.protocol.put_runs` and :mod:`~tstorage_client.protocol.get_encode`
(server role), :mod:`~tstorage_client.protocol.client_connection` and
:mod:`~tstorage_client.protocol.server_connection` (the state machines). Every name is
importable from here.

Errors: :class:`~tstorage_client.errors.RemoteProtocolError` from ``next_event`` (the peer
broke the protocol; after it every further call raises again),
:class:`~tstorage_client.errors.LocalProtocolError` from ``send``/encoders (we were asked
to send something the protocol cannot carry).
"""

from ..events import NEED_DATA
from ..record import INT32_MAX as INT32_MAX
from .client_connection import ClientConnection
from .get_decode import NumpyRecordDecoder, ObjectRecordDecoder, RecordDecoder
from .get_encode import encode_get_records
from .put_decode import decode_put_records
from .put_encode import encode_put_batches, encode_put_block
from .put_runs import FIXED_RUN_MIN as FIXED_RUN_MIN
from .put_runs import LARGE_BATCH_RECORDS as LARGE_BATCH_RECORDS
from .put_runs import RUN_MAX_RECORDS as RUN_MAX_RECORDS
from .put_runs import RUN_WINDOW_BYTES as RUN_WINDOW_BYTES
from .put_runs import PutRun, RunStop, walk_put_run
from .server_connection import ServerConnection
from .wire import ACQ_PAIR as ACQ_PAIR
from .wire import BATCH_HEADER as BATCH_HEADER
from .wire import BATCH_HEADER_AND_SIZE as BATCH_HEADER_AND_SIZE
from .wire import (
    CMD_GET,
    CMD_GET_ACQ,
    CMD_PUT,
    CMD_PUTA,
    DEFAULT_MAX_BUFFER_SIZE,
    MAX_PAYLOAD_BYTES,
)
from .wire import HEADER as HEADER
from .wire import HEADER_BYTES as HEADER_BYTES
from .wire import INT32 as INT32
from .wire import INT64 as INT64
from .wire import KEY as KEY
from .wire import KEY_BYTES as KEY_BYTES
from .wire import KEY_RANGE_BYTES as KEY_RANGE_BYTES
from .wire import MAX_RESPONSE_HEADER_EXTRA as MAX_RESPONSE_HEADER_EXTRA
from .wire import PUT_END_GUARD as PUT_END_GUARD
from .wire import PUT_KEY_BYTES as PUT_KEY_BYTES
from .wire import PUT_RECORD_HEAD as PUT_RECORD_HEAD
from .wire import PUTA_KEY_BYTES as PUTA_KEY_BYTES
from .wire import PUTA_RECORD_HEAD as PUTA_RECORD_HEAD
from .wire import RECV_BYTES_MAX as RECV_BYTES_MAX
from .wire import RECV_BYTES_MIN as RECV_BYTES_MIN
from .wire import SIZE_AND_KEY as SIZE_AND_KEY
from .wire import key_range_bytes as key_range_bytes

__all__ = [
    "CMD_GET",
    "CMD_GET_ACQ",
    "CMD_PUT",
    "CMD_PUTA",
    "DEFAULT_MAX_BUFFER_SIZE",
    "MAX_PAYLOAD_BYTES",
    "NEED_DATA",
    "ClientConnection",
    "NumpyRecordDecoder",
    "ObjectRecordDecoder",
    "PutRun",
    "RecordDecoder",
    "RunStop",
    "ServerConnection",
    "decode_put_records",
    "encode_get_records",
    "encode_put_batches",
    "encode_put_block",
    "walk_put_run",
]

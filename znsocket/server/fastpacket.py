"""The python-socketio packet class the server hands over through ``serializer=``.

An acknowledgement whose data cannot be serialised (a storage returning an object JSON
does not know) is replaced by a ``SerializationError`` envelope, so the request is still
answered and the connection stays open. Encoding and decoding are python-socketio's own;
the cheaper binary check comes from python-socketio's door
(:class:`~znsocket.server._socketio_private.PacketHooks`).
"""

from __future__ import annotations

from typing import Any

from socketio import packet

from znsocket.protocol import jsoncodec
from znsocket.protocol.sio_packets import has_binary
from znsocket.server._socketio_private import BasePacket

__all__ = ["FastPacket", "has_binary"]


class FastPacket(BasePacket):
    """python-socketio's packet class, answering unserialisable acknowledgements with an
    error envelope."""

    json = jsoncodec

    def encode(self) -> Any:
        try:
            return super().encode()
        except (TypeError, ValueError) as exc:
            kind: int = self.packet_type  # type: ignore[has-type]
            if kind not in (packet.ACK, packet.BINARY_ACK):
                raise
            self.packet_type = packet.ACK
            self.data = [
                {
                    "error": {
                        "msg": f"The result cannot be sent: {exc}",
                        "type": "SerializationError",
                    }
                }
            ]
            return super().encode()

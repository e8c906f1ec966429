"""The znsocket client: :class:`Client`, :class:`Pipeline` and the Socket.IO transport."""

from znsocket.client.client import Client
from znsocket.client.pipeline import Pipeline
from znsocket.client.transport import ConnectionLostError, SocketIOTransport
from znsocket.client.url import parse_url

__all__ = ["Client", "ConnectionLostError", "Pipeline", "SocketIOTransport", "parse_url"]

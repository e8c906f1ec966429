"""``Pipeline``: queue commands and send them in one ``pipeline`` event."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import redis

from znsocket.exceptions import ZnSocketError
from znsocket.protocol import raise_for_error, unwrap_data
from znsocket.protocol.events import Event

if TYPE_CHECKING:
    from znsocket.client.client import Client


class Pipeline:
    """Commands queued on a :class:`~znsocket.Client` and executed as one batch.

    Any ``redis.Redis`` method name queues that command and returns the pipeline, so
    calls chain: ``client.pipeline().set("a", 1).get("a").execute()``. The batch is one
    ``pipeline`` event (compressed or chunked like any large call). The server stops at
    the first failing command and only that error is raised.

    As upstream, :meth:`execute` keeps the queue: executing the same pipeline again
    sends every command again.

    Args:
        client: The connection to send the batch over.
        *args: Ignored (``redis.Redis.pipeline`` compatibility, e.g. ``transaction``).
        **kwargs: Ignored.
    """

    def __init__(self, client: Client, *args: Any, **kwargs: Any) -> None:
        self.client = client
        self.pipeline: list[tuple[str, list[Any]]] = []

    def _queue(self, command: str, *args: Any, **kwargs: Any) -> Pipeline:
        self.pipeline.append((command, [args, kwargs]))
        return self

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or not hasattr(redis.Redis, name):
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")
        pipeline = self.pipeline

        def queue(*args: Any, **kwargs: Any) -> Pipeline:
            pipeline.append((name, [args, kwargs]))
            return self

        self.__dict__[name] = queue  # later look-ups skip __getattr__
        return queue

    def __len__(self) -> int:
        return len(self.pipeline)

    def execute(self) -> list[Any]:
        """Send the queued commands; return their results in order.

        Raises:
            ZnSocketError: No answer from the server, or (chunked path) a server error.
            Exception: The mapped exception of the first failing command (spec §2.5).
        """
        result = self.client.call(Event.PIPELINE, message=self.pipeline)
        if result is None:
            raise ZnSocketError("No response from server")
        raise_for_error(result)
        return [unwrap_data(item) for item in result["data"]]

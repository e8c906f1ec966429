"""Fixtures and helpers of the tstorage_client tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from tstorage_client.events import NEED_DATA, Event


def chunked(data: bytes, how: str) -> Iterator[bytes]:
    """``data`` whole, or one byte at a time."""
    if how == "whole":
        yield data
    else:
        for i in range(len(data)):
            yield data[i : i + 1]


def drain(conn: Any, data: bytes, how: str, stop: Callable[[Event], bool] | None = None) -> list[Event]:
    """Feed ``data`` in pieces and collect every event until NEED_DATA after the last byte
    (or until ``stop(event)`` is true)."""
    events: list[Event] = []
    for piece in chunked(data, how):
        conn.receive_data(piece)
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                break
            events.append(event)
            if stop is not None and stop(event):
                return events
    return events

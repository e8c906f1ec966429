"""Refresh events: what one client's writes tell the other clients."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

import znsocket

pytestmark = pytest.mark.integration


def wait_for(pred: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


def test_list_refresh_payloads(client: znsocket.Client, client2: znsocket.Client) -> None:
    seen: list[Any] = []
    mine: list[Any] = []
    znsocket.List(client2, "lst").on_refresh(seen.append)
    lst = znsocket.List(client, "lst")
    lst.on_refresh(mine.append)
    lst.extend([1, 2])
    lst.append(3)
    lst.insert(1, 9)
    lst[0] = 0
    del lst[1]
    lst.pop()
    expected = [
        {"start": 0, "stop": None},
        {"indices": [2]},
        {"start": 1, "stop": None},
        {"indices": [0]},
        {"start": 1, "stop": None},
        {"start": 2, "stop": None},
    ]
    assert wait_for(lambda: len(seen) >= len(expected))
    assert seen == expected
    assert mine == []  # never delivered back to the sender


def test_dict_refresh_payloads(client: znsocket.Client, client2: znsocket.Client) -> None:
    seen: list[Any] = []
    znsocket.Dict(client2, "d").on_refresh(seen.append)
    d = znsocket.Dict(client, "d")
    d["a"] = 1
    d.update({"b": 2, "c": 3})
    del d["a"]
    assert wait_for(lambda: len(seen) >= 3)
    assert seen == [{"keys": ["a"]}, {"keys": ["b", "c"]}, {"keys": ["a"]}]


def test_refresh_callbacks_argument(server: Any, client: znsocket.Client) -> None:
    seen: list[Any] = []
    other = znsocket.Client(server.url, refresh_callbacks={"znsocket.Dict:cb": seen.append})
    try:
        znsocket.Dict(client, "cb")["k"] = "v"
        assert wait_for(lambda: seen == [{"keys": ["k"]}])
    finally:
        other.sio.disconnect()


def test_no_socket_no_refresh(redis_client: Any) -> None:
    d = znsocket.Dict(redis_client, "plain")
    with pytest.raises(ValueError, match="No socket connection available"):
        d.on_refresh(print)

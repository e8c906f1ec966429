"""Refresh relay and adapters over the wire (spec §5, §6)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.znsocket.server.conftest import RawClient

pytestmark = pytest.mark.integration


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_refresh_is_relayed_to_others_not_the_sender(connect: Callable[..., RawClient]) -> None:
    sender, receiver, third = connect(), connect(), connect()
    payload = {"target": "znsocket.List:L", "data": {"indices": [0]}}
    sender.emit("refresh", payload)  # Python clients emit without an ack
    assert wait_for(lambda: len(receiver.refreshes) == 1 and len(third.refreshes) == 1)
    assert receiver.refreshes == [payload]
    time.sleep(0.1)
    assert sender.refreshes == []


def test_refresh_with_ack_like_the_typescript_client(connect: Callable[..., RawClient]) -> None:
    sender, receiver = connect(), connect()
    payload = {"target": "znsocket.Dict:D", "data": {"keys": ["a"]}}
    assert sender.call("refresh", payload) is None  # an empty ack
    assert wait_for(lambda: receiver.refreshes == [payload])


@pytest.mark.parametrize("payload", ["x", {"data": {}}, {"target": 5}, [1]])
def test_malformed_refresh(connect: Callable[..., RawClient], payload: Any) -> None:
    sender, receiver = connect(), connect()
    assert sender.call("refresh", payload)["error"]["type"] == "MalformedMessageError"
    time.sleep(0.1)
    assert receiver.refreshes == []


def test_adapter_registration_and_checks(connect: Callable[..., RawClient]) -> None:
    owner, reader = connect(), connect()
    key = "znsocket.List:adapted"
    assert reader.call("adapter_exists", [[], {"key": key}]) is False
    assert owner.call("register_adapter", [[], {"key": key}]) is True
    assert reader.call("check_adapter", [[], {"key": key}]) is True
    assert reader.call("adapter_exists", [[], {"key": key}]) is True


def test_register_after_check_is_a_key_error(connect: Callable[..., RawClient]) -> None:
    owner = connect()
    key = "znsocket.List:seen-first"
    assert owner.call("check_adapter", [[], {"key": key}]) is False
    assert owner.call("register_adapter", [[], {"key": key}]) == {
        "error": {"msg": f"Key {key} already exists in storage", "type": "KeyError"}
    }


def test_adapter_get_is_forwarded_to_the_owner(connect: Callable[..., RawClient]) -> None:
    owner, reader = connect(), connect()
    key = "znsocket.List:forwarded"
    owner.adapter_answer = lambda data: 3 if data[1]["method"] == "__len__" else '"item"'
    owner.call("register_adapter", [[], {"key": key}])
    request = [[], {"key": key, "method": "__len__"}]
    assert reader.call("adapter:get", request) == 3
    assert owner.adapter_requests == [request]
    assert (
        reader.call("adapter:get", [[], {"key": key, "method": "__getitem__", "index": 0}])
        == '"item"'
    )


def test_adapter_get_from_the_owner_itself(connect: Callable[..., RawClient]) -> None:
    owner = connect()
    key = "znsocket.List:self-served"
    owner.adapter_answer = 7
    owner.call("register_adapter", [[], {"key": key}])
    assert owner.call("adapter:get", [[], {"key": key, "method": "__len__"}]) == 7


def test_adapter_get_unknown_key(client: RawClient) -> None:
    assert client.call("adapter:get", [[], {"key": "znsocket.List:none", "method": "__len__"}]) == {
        "error": {"msg": "Key znsocket.List:none does not exist in storage", "type": "KeyError"}
    }


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_adapter_owner_that_never_answers(connect: Callable[..., RawClient]) -> None:
    owner, reader = connect(), connect()
    key = "znsocket.List:silent"

    def fail(data: Any) -> Any:  # as upstream's client without a callback: no ack at all
        raise RuntimeError("No adapter callback set")

    owner.adapter_answer = fail
    owner.call("register_adapter", [[], {"key": key}])
    started = time.monotonic()
    reply = reader.call("adapter:get", [[], {"key": key, "method": "__len__"}], timeout=20)
    assert reply["error"]["type"] == "TimeoutError"
    assert 4 < time.monotonic() - started < 15
    assert reader.cmd("set", "alive", "1") == {"data": True}


def test_disconnect_releases_adapters(connect: Callable[..., RawClient]) -> None:
    owner, reader = connect(), connect()
    keys = ["znsocket.List:gone", "znsocket.Dict:znsocket.List:gone:0"]
    for key in keys:
        assert owner.call("register_adapter", [[], {"key": key}]) is True
        assert reader.call("check_adapter", [[], {"key": key}]) is True
    owner.close()
    assert wait_for(lambda: reader.call("adapter_exists", [[], {"key": keys[0]}]) is False)
    assert reader.call("adapter_exists", [[], {"key": keys[1]}]) is False
    newcomer = connect()
    assert newcomer.call("register_adapter", [[], {"key": keys[0]}]) is True


@pytest.mark.parametrize(
    "payload", ["x", [[], {}], [[], {"key": 5}], [[], {"key": ""}], [[], {"key": "k" * 5000}]]
)
def test_malformed_adapter_events(client: RawClient, payload: Any) -> None:
    for event in ("register_adapter", "check_adapter", "adapter_exists", "adapter:get"):
        assert client.call(event, payload)["error"]["type"] == "MalformedMessageError"

"""ListAdapter / DictAdapter: one client serves local objects, another reads them."""

from __future__ import annotations

import time

import numpy as np
import pytest
import znjson

import znsocket
import znsocket.exceptions

pytestmark = pytest.mark.integration


def test_list_adapter_reads(client: znsocket.Client, client2: znsocket.Client) -> None:
    data = [1, 2, 3, 4, 5]
    znsocket.ListAdapter(key="data", socket=client, object=data)
    lst = znsocket.List(client2, "data")
    assert lst._adapter_available is True
    assert len(lst) == 5
    assert lst[0] == 1 and lst[-1] == 5
    assert lst[1:3] == [2, 3] and lst[::2] == [1, 3, 5] and lst[::-1] == [5, 4, 3, 2, 1]
    data.append(6)  # live object
    assert len(lst) == 6 and lst[-1] == 6
    assert list(lst) == [1, 2, 3, 4, 5, 6]
    with pytest.raises(IndexError):
        lst[10]


def test_adapters_are_read_only(client: znsocket.Client, client2: znsocket.Client) -> None:
    znsocket.ListAdapter(key="ro", socket=client, object=[1])
    znsocket.DictAdapter(key="rod", socket=client, object={"a": 1})
    lst = znsocket.List(client2, "ro")
    d = znsocket.Dict(client2, "rod")
    for write in (
        lambda: lst.append(2),
        lambda: lst.extend([2]),
        lambda: lst.insert(0, 2),
        lambda: lst.__setitem__(0, 2),
        lambda: lst.__delitem__(0),
        lambda: lst.pop(),
        lambda: d.__setitem__("b", 2),
        lambda: d.update({"b": 2}),
        lambda: d.__delitem__("a"),
    ):
        with pytest.raises(znsocket.exceptions.FrozenStorageError, match="is frozen"):
            write()


def test_register_after_use_fails(client: znsocket.Client) -> None:
    znsocket.List(client, "taken")
    with pytest.raises(KeyError):
        znsocket.ListAdapter(key="taken", socket=client, object=[1])


def test_dict_adapter_reads(client: znsocket.Client, client2: znsocket.Client) -> None:
    data = {"name": "John", "age": 30, "flag": True, "none": None}
    znsocket.DictAdapter(key="user", socket=client, object=data)
    d = znsocket.Dict(client2, "user")
    assert d["name"] == "John" and d["flag"] is True and d["none"] is None
    assert d.keys() == ["name", "age", "flag", "none"]
    assert d.values() == ["John", 30, True, None]
    assert d.items()[1] == ("age", 30)
    assert "age" in d and "zip" not in d
    with pytest.raises(KeyError):
        d["zip"]
    data["country"] = "Germany"
    assert len(d) == 5 and d["country"] == "Germany"


def test_adapter_copy_and_converter(client: znsocket.Client, client2: znsocket.Client) -> None:
    arrays = [np.arange(3), np.ones(2)]
    znsocket.ListAdapter(
        key="arr", socket=client, object=arrays, converter=[znjson.converter.NumpyConverter]
    )
    lst = znsocket.List(client2, "arr", converter=[znjson.converter.NumpyConverter])
    assert isinstance(lst[0], np.ndarray) and lst[0].tolist() == [0, 1, 2]
    copied = lst.copy("arr-copy")
    assert copied._adapter_available is False
    assert [a.tolist() for a in copied] == [[0, 1, 2], [1.0, 1.0]]
    copied.append(np.zeros(1))  # a copy is writable
    assert len(copied) == 3


def test_transform_callback_nests_dict_adapters(
    client: znsocket.Client, client2: znsocket.Client
) -> None:
    def to_dict(item, key, socket, converter=None, convert_nan=False):  # type: ignore[no-untyped-def]
        return znsocket.DictAdapter(key, socket, {"value": item}, converter, convert_nan)

    znsocket.ListAdapter(
        key="nested", socket=client, object=[10, 20], item_transform_callback=to_dict
    )
    lst = znsocket.List(client2, "nested")
    first = lst[0]
    assert isinstance(first, znsocket.Dict)
    assert first.key == "znsocket.Dict:znsocket.List:nested:0"
    assert first["value"] == 10
    assert lst[0]["value"] == 10  # second access reuses the registered adapter
    with pytest.raises(znsocket.exceptions.FrozenStorageError):
        first["value"] = 1


def test_owner_disconnect_unregisters(server, client: znsocket.Client) -> None:  # type: ignore[no-untyped-def]
    owner = znsocket.Client(server.url)
    znsocket.ListAdapter(key="gone", socket=owner, object=[1])
    assert client.call("adapter_exists", key="znsocket.List:gone") is True
    owner.sio.disconnect()
    deadline = time.monotonic() + 5
    while client.call("adapter_exists", key="znsocket.List:gone") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.call("adapter_exists", key="znsocket.List:gone") is False


def test_fallback_copy_from_adapter(client: znsocket.Client, client2: znsocket.Client) -> None:
    znsocket.ListAdapter(key="src", socket=client, object=[1, 2, 3])
    lst = znsocket.List(client2, "dst", fallback="src", fallback_policy="copy")
    assert lst[:] == [1, 2, 3]
    lst.append(4)
    assert len(lst) == 4

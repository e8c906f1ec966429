"""The public names, signatures and defaults the official client documents."""

from __future__ import annotations

import importlib
import inspect

import pytest

import tstorage_client
from tstorage_client.channel import Channel
from tstorage_client.channel_async import AsyncChannel

MODULE_NAMES = {
    "channel": ["Channel"],
    "channel_async": ["AsyncChannel"],
    "payload_type": [
        "PayloadType",
        "StructPayloadType",
        "TuplePayloadType",
        "UnitPayloadType",
        "BytesPayloadType",
        "NumpyPayloadType",
    ],
    "record": ["Key", "Record"],
    "records_set": ["RecordsSet", "GetCallback"],
    "response": ["ResponseStatus", "Response", "ResponseAcq", "ResponseGet"],
    "timestamp": [
        "Tstoragedatetime",
        "to_unix",
        "to_unix_ns",
        "from_unix",
        "from_unix_ns",
        "now",
        "now_ns",
    ],
    "_channel_common": [
        "_CommandType",
        "RequestHeader",
        "ReceiveBuffer",
        "_ChannelMixin",
        "RecordsParsingStatus",
        "GetRequestState",
        "ACQS_PAIR_SIZE",
        "ACQ_SIZE",
        "FULL_KEY_SIZE",
        "HEADER_AUX_SIZE",
        "PUT_END_GUARD",
        "RESPONSE_HEADER_SIZE",
    ],
}


@pytest.mark.parametrize("module", sorted(MODULE_NAMES))
def test_module_names(module: str) -> None:
    mod = importlib.import_module(f"tstorage_client.{module}")
    for name in MODULE_NAMES[module]:
        assert hasattr(mod, name), f"{module}.{name}"


def test_package_root_reexports() -> None:
    for name in tstorage_client.__all__:
        assert getattr(tstorage_client, name) is not None
    with pytest.raises(AttributeError):
        tstorage_client.nope  # noqa: B018


def params(func: object) -> dict[str, object]:
    return {n: p.default for n, p in inspect.signature(func).parameters.items()}  # type: ignore[arg-type]


def test_signatures() -> None:
    empty = inspect.Parameter.empty
    assert params(Channel.__init__) == {
        "self": empty,
        "host": empty,
        "port": empty,
        "payload_type": empty,
        "timeout": None,
        "memory_limit": None,
        "ssl_context": None,
    }
    assert params(AsyncChannel.__init__) == {
        "self": empty,
        "host": empty,
        "port": empty,
        "payload_type": empty,
        "memory_limit": None,
        "ssl_context": None,
    }
    for cls in (Channel, AsyncChannel):
        assert (
            params(cls.put)
            == params(cls.puta)
            == {"self": empty, "data": empty, "max_batch_size": 2147483647, "skip_invalid": False}
        )
        assert params(cls.get)["recv_buffer_size"] == 65536
        assert params(cls.get_iter)["recv_buffer_size"] == 65536
        assert list(params(cls.get_stream)) == [
            "self",
            "key_min",
            "key_max",
            "callback",
            "recv_buffer_size",
        ]
        assert list(params(cls.get_acq)) == ["self", "key_min", "key_max"]
    for name in (
        "connect",
        "close",
        "put",
        "puta",
        "get",
        "get_acq",
        "get_stream",
        "__aenter__",
        "__aexit__",
    ):
        assert inspect.iscoroutinefunction(getattr(AsyncChannel, name)), name
    assert isinstance(Channel.timeout, property) and isinstance(Channel.memory_limit, property)
    assert isinstance(AsyncChannel.memory_limit, property)

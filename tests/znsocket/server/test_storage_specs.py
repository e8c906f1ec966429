"""The command specs: one per command of the interface, binding as Python binds, and true to
what the reference storage actually reads and changes."""

from __future__ import annotations

import contextlib
import inspect
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.storage.generic import WRITES
from tests._command_calls import SAMPLES, as_call, fill, key_slots, positional_range
from znsocket.storage.base import COMMANDS, StorageCommands
from znsocket.storage.memory import MemoryStorage
from znsocket.storage.spec import COMMAND_SPECS, EVENT_SPECS, KEY_FIELDS, list_or_args

# the reference store: a key of each type, so every command finds one it applies to
POOL = {"string": "s1", "hash": "h1", "list": "l1", "set": "t1", "zset": "z1"}
SECOND = {"string": "s2", "hash": "h2", "list": "l2", "set": "t2", "zset": "z2"}
MISSING = "nothing"


def seeded() -> MemoryStorage:
    m = MemoryStorage()
    m.set(POOL["string"], "7")
    m.hset(POOL["hash"], mapping={"f": "v", "g": "w"})
    m.rpush(POOL["list"], "v", "w", "v")
    m.sadd(POOL["set"], "m", "n")
    m.zadd(POOL["zset"], {"m": 1.0, "n": 2.0})
    # the second key of each type differs, so a copy or a move between them shows
    m.set(SECOND["string"], "8")
    m.hset(SECOND["hash"], mapping={"g": "x"})
    m.rpush(SECOND["list"], "x")
    m.sadd(SECOND["set"], "o")
    m.zadd(SECOND["zset"], {"o": 3.0})
    return m


def everything(m: MemoryStorage) -> dict[str, Any]:
    """Every key's type, value and time to live (``type`` and reads only)."""
    out: dict[str, Any] = {}
    for key in [*POOL.values(), *SECOND.values(), MISSING]:
        kind = m.type(key)
        value: Any = None
        if kind == "string":
            value = m.get(key)
        elif kind == "hash":
            value = m.hgetall(key)
        elif kind == "list":
            value = m.lrange(key, 0, -1)
        elif kind == "set":
            value = sorted(m.smembers(key))
        elif kind == "zset":
            value = m.zrange(key, 0, -1, withscores=True)
        out[key] = (kind, value, m.ttl(key) > 0)
    return out


def test_every_command_of_the_interface_has_a_spec() -> None:
    assert set(COMMAND_SPECS) == COMMANDS
    assert set(SAMPLES) == COMMANDS  # and a sample call in the tests
    for name, spec in COMMAND_SPECS.items():
        method = inspect.signature(getattr(StorageCommands, name))
        assert spec.signature is not None
        assert list(spec.signature.parameters) == list(method.parameters)[1:], name
        for param in spec.keys:
            assert param.name in spec.signature.parameters, (name, param.name)


def test_persistence_writes_what_the_specs_say() -> None:
    # generic keys persist every changing command named by its arguments; flushall is apart
    changing = {n for n, s in COMMAND_SPECS.items() if s.writes}
    assert set(WRITES) == changing - {"flushall"}
    assert (
        WRITES["copy"](["a", "b"], {})
        == ["b"]
        == WRITES["copy"]([], {"source": "a", "destination": "b"})
    )
    assert WRITES["smove"]([], {"src": "a", "dst": "b", "value": "m"}) == ["a", "b"]
    assert WRITES["delete"](["a", "b"], {}) == ["a", "b"]
    with pytest.raises(TypeError):
        WRITES["set"](["a"], {"name": "b", "value": "v"})


def test_adapter_and_refresh_events_name_keys_in_every_key_field() -> None:
    for event in ("refresh", "register_adapter", "check_adapter", "adapter_exists", "adapter:get"):
        spec = EVENT_SPECS[event]
        found = spec.keys_of([], {"key": "k", "name": "n", "target": "t", "method": "m"})
        assert sorted(k for k, _ in found) == sorted(["k", "n", "t"]), event
        assert [f.name for f in spec.keys] == list(KEY_FIELDS)
        with pytest.raises(TypeError, match="keyword fields only"):
            spec.keys_of(["k"], {"key": "k"})
    assert EVENT_SPECS["adapter:get"].written([], {"key": "k", "target": "t"}) == ["t"]
    assert not EVENT_SPECS["check_adapter"].writes and EVENT_SPECS["register_adapter"].writes
    # reading an adapter changes nothing; making its owner copy to a target does
    get = EVENT_SPECS["adapter:get"]
    assert not get.changes(get.keys_of([], {"key": "k", "method": "__len__"}))
    assert get.changes(get.keys_of([], {"key": "k", "method": "copy", "target": "t"}))


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_positional_and_keyword_passing_name_the_same_keys(command: str) -> None:
    arguments = fill(command, [f"k{i}" for i in range(key_slots(command))])
    spec = COMMAND_SPECS[command]
    found = [spec.keys_of(*as_call(command, arguments, p)) for p in positional_range(command)]
    assert all(keys == found[0] for keys in found), found
    assert sorted(k for k, _ in found[0]) == [f"k{i}" for i in range(key_slots(command))]


@pytest.mark.parametrize(
    ("command", "args", "kwargs"),
    [
        ("mget", [["a"]], {"keys": ["b"]}),  # a keyword repeating a positional
        ("copy", ["a"], {"source": "b", "destination": "c"}),
        ("delete", [], {"names": ["b"]}),  # *names cannot be passed by keyword
        ("get", ["a"], {"name2": "b"}),  # an unknown keyword
        ("smove", ["a", "b"], {}),  # a missing argument
        ("get", ["a", "b"], {}),  # too many
    ],
)
def test_arguments_that_cannot_be_bound_are_a_type_error(
    command: str, args: list[Any], kwargs: dict[str, Any]
) -> None:
    with pytest.raises(TypeError):
        COMMAND_SPECS[command].keys_of(args, kwargs)
    with pytest.raises(TypeError):  # and the reference storage refuses them alike
        getattr(MemoryStorage(), command)(*args, **kwargs)


def test_a_list_or_one_argument_is_resolved_as_the_storage_resolves_it() -> None:
    m = MemoryStorage()
    m.set("a", "1")
    m.set("b", "2")
    spec = COMMAND_SPECS["mget"]
    for keys in ("a", ["a", "b"], ("a",), {"a": 0, "b": 1}, 5):
        names = [k for k, _ in spec.keys_of([keys], {})]
        assert names == list_or_args(keys)
        assert len(m.mget(keys)) == len(names)


@pytest.mark.parametrize("command", sorted(COMMANDS))
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_a_command_changes_only_the_keys_its_spec_says_it_writes(
    command: str, data: st.DataObject
) -> None:
    kind = SAMPLES[command][0]
    candidates = [POOL[kind], SECOND[kind], MISSING, *POOL.values()]
    keys = [data.draw(st.sampled_from(candidates)) for _ in range(key_slots(command))]
    arguments = fill(command, keys)
    positional = data.draw(st.sampled_from(positional_range(command)))
    args, kwargs = as_call(command, arguments, positional)
    spec = COMMAND_SPECS[command]
    store = seeded()
    before = everything(store)
    with contextlib.suppress(Exception):  # a refused call must change nothing either
        getattr(store, command)(*args, **kwargs)
    after = everything(store)
    changed = {k for k in before if before[k] != after[k]}
    if spec.all_keys:
        return
    written = set(spec.written(args, kwargs))
    assert changed <= written, (command, args, kwargs, changed, written)

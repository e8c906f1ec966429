"""Key scopes hold however a call is passed: a token for ``a/*`` never reads or changes ``b/x``.

A real ``gateway run`` process with ``[auth]`` tokens, spoken to with raw socket.io clients
so every way of passing a call can be sent exactly: positional or keyword arguments, alone or
in a ``pipeline``, plain, in a ``compressed_message`` or in a ``chunked_message``; the adapter
events with extra key fields; ``refresh`` events relayed, found by following TStorage, and
crossing gateways through a message queue.
"""

from __future__ import annotations

import itertools
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests._command_calls import SAMPLES, as_call, fill, key_slots, positional_range
from tests._servers import ServerProcess, spawn
from tests.gateway.conftest import meter_config
from tests.gateway.test_storage_series import put_direct
from tests.znsocket.server.conftest import RawClient
from znsocket.protocol.framing import dumps_call, encode_buffer
from znsocket.storage.base import COMMANDS

pytestmark = pytest.mark.integration

AUTH = """
[auth]
enabled = true

[[auth.tokens]]
name = "scoped"
env = "GW_SCOPE_RW"
access = "read-write"
keys = ["a/*"]

[[auth.tokens]]
name = "scoped-ro"
env = "GW_SCOPE_RO"
access = "read"
keys = ["a/*"]

[[auth.tokens]]
name = "b-reader"
env = "GW_SCOPE_B"
access = "read"
keys = ["b/*", "meters/2/*"]

[[auth.tokens]]
name = "admin"
env = "GW_SCOPE_ADMIN"
access = "read-write"
keys = ["*"]
"""
ENV = {
    "GW_SCOPE_RW": "rw-secret",
    "GW_SCOPE_RO": "ro-secret",
    "GW_SCOPE_B": "b-secret",
    "GW_SCOPE_ADMIN": "admin-secret",
}
TOKENS = {"scoped": "rw-secret", "scoped-ro": "ro-secret", "b": "b-secret", "admin": "admin-secret"}

# b/x and its siblings, one per value type, hold data the a/* tokens must never see or change
FOREIGN = {
    "string": "b/x",
    "hash": "b/x-hash",
    "list": "b/x-list",
    "set": "b/x-set",
    "zset": "b/x-zset",
}
OWN = {"string": "a/s", "hash": "a/h", "list": "a/l", "set": "a/t", "zset": "a/z"}
OWN_2 = {kind: key + "2" for kind, key in OWN.items()}
# the same key as a client's List/Dict names it (the policy strips the prefix)
SPELLINGS = ("{}", "znsocket.List:{}", "znsocket.Dict:{}")
WRAPPERS = ("plain", "compressed", "chunked")
REFUSED = {"PermissionDeniedError"}


def seed(admin: RawClient, keys: dict[str, str]) -> None:
    for kind, key in keys.items():
        admin.cmd("delete", key)
        if kind == "string":
            admin.cmd("set", key, "secret")
        elif kind == "hash":
            admin.cmd("hset", key, mapping={"f": "secret"})
        elif kind == "list":
            admin.cmd("rpush", key, "v", "secret")
        elif kind == "set":
            admin.cmd("sadd", key, "m", "secret")
        else:
            admin.cmd("zadd", key, {"m": 1.0, "secret": 2.0})


def snapshot(admin: RawClient, keys: dict[str, str]) -> dict[str, Any]:
    """Each key's type, value and time to live, as the admin token reads them."""
    out: dict[str, Any] = {}
    for key in keys.values():
        kind = admin.cmd("type", key)["data"]
        read = {
            "string": ("get", ()),
            "hash": ("hgetall", ()),
            "list": ("lrange", (0, -1)),
            "set": ("smembers", ()),
            "zset": ("zrange", (0, -1)),
        }.get(kind)
        value = admin.cmd(read[0], key, *read[1])["data"] if read else None
        out[key] = (kind, sorted(value) if kind == "set" else value, admin.cmd("ttl", key)["data"])
    return out


_chunk_ids = itertools.count()


def send(client: RawClient, wrapper: str, event: str, payload: list[Any]) -> Any:
    """Send one event with its ``[args, kwargs]`` payload, plain or wrapped; its answer."""
    if wrapper == "plain":
        return client.call(event, payload)
    buffer = dumps_call(*payload)
    if wrapper == "compressed":
        return client.call(
            "compressed_message", {"event": event, "data": encode_buffer(buffer, compress=True)}
        )
    flagged = encode_buffer(buffer, compress=False)
    half = max(1, len(flagged) // 2)
    pieces = [flagged[:half], flagged[half:]] if len(flagged) > 1 else [flagged]
    chunk_id = f"scope-{next(_chunk_ids)}"
    for index, piece in enumerate(pieces):
        ack = client.call(
            "chunked_message",
            {
                "chunk_id": chunk_id,
                "chunk_index": index,
                "total_chunks": len(pieces),
                "event": event,
                "data": piece,
                "size": len(piece),
            },
        )
        assert "error" not in ack, ack
    return client.call("get_chunked_result", {"chunk_id": chunk_id})


def run(
    client: RawClient,
    wrapper: str,
    in_pipeline: bool,
    command: str,
    args: list[Any],
    kw: dict[str, Any],
) -> Any:
    """Run one command; in a pipeline, after a harmless command on an own key."""
    if not in_pipeline:
        return send(client, wrapper, command, [args, kw])
    message = [["exists", [[OWN["string"]], {}]], [command, [args, kw]]]
    return send(client, wrapper, "pipeline", [[], {"message": message}])


def error_type(answer: Any) -> str | None:
    if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
        return str(answer["error"].get("type"))
    return None


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
) -> Iterator[tuple[ServerProcess, int]]:
    cid = fresh_cid()
    path = tmp_path_factory.mktemp("scope") / "gateway.toml"
    path.write_text(meter_config(tstorage, cid, fresh_cid()) + AUTH)
    with spawn(["gateway", "run", "--config", str(path), "--port", "0"], env=ENV) as proc:
        yield proc, cid


@pytest.fixture(scope="module")
def clients(gateway: tuple[ServerProcess, int]) -> Iterator[dict[str, RawClient]]:
    proc = gateway[0]
    opened = {name: RawClient(proc.url, auth={"token": t}) for name, t in TOKENS.items()}
    seed(opened["admin"], FOREIGN)
    yield opened
    for c in opened.values():
        c.close()


# ------------------------------------------------------------------ every command
@pytest.mark.parametrize("command", sorted(COMMANDS - {"flushall"}))
def test_a_token_for_a_never_reads_or_changes_b_x(
    command: str, clients: dict[str, RawClient]
) -> None:
    admin, kind = clients["admin"], SAMPLES[command][0]
    before = snapshot(admin, FOREIGN)
    slots = key_slots(command)

    @settings(
        max_examples=12,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        foreign=st.sets(st.integers(0, slots - 1), min_size=1),
        spelling=st.sampled_from(SPELLINGS),
        positional=st.sampled_from(positional_range(command)),
        wrapper=st.sampled_from(WRAPPERS),
        in_pipeline=st.booleans(),
        token=st.sampled_from(["scoped", "scoped-ro"]),
    )
    def check(
        foreign: set[int],
        spelling: str,
        positional: int,
        wrapper: str,
        in_pipeline: bool,
        token: str,
    ) -> None:
        own = [OWN[kind] if i % 2 == 0 else OWN_2[kind] for i in range(slots)]
        keys = [spelling.format(FOREIGN[kind]) if i in foreign else own[i] for i in range(slots)]
        args, kw = as_call(command, fill(command, keys), positional)
        answer = run(clients[token], wrapper, in_pipeline, command, args, kw)
        assert error_type(answer) in REFUSED, (
            token,
            wrapper,
            in_pipeline,
            command,
            args,
            kw,
            answer,
        )
        assert "secret" not in repr(answer)
        # the same call on the token's own keys goes through (it was refused for the key)
        args, kw = as_call(command, fill(command, own), positional)
        control = run(clients["scoped"], wrapper, in_pipeline, command, args, kw)
        assert error_type(control) not in REFUSED, (command, args, kw, control)

    check()
    assert snapshot(admin, FOREIGN) == before


@pytest.mark.parametrize("wrapper", WRAPPERS)
@pytest.mark.parametrize(
    ("command", "args", "kwargs"),
    [
        ("mget", [[OWN["string"]]], {"keys": [FOREIGN["string"]]}),
        ("copy", [OWN["string"]], {"source": FOREIGN["string"], "destination": OWN_2["string"]}),
        ("delete", [], {"names": [FOREIGN["string"]]}),
        ("get", [OWN["string"]], {"names": FOREIGN["string"]}),
        ("mget", [OWN["string"], FOREIGN["string"]], {"keys": [OWN["string"]]}),
        ("set", [OWN["string"], "v"], {"name": FOREIGN["string"]}),
        ("hset", [OWN["hash"]], {"name": FOREIGN["hash"], "key": "f", "value": "v"}),
    ],
)
def test_arguments_the_command_cannot_bind_are_refused_before_storage(
    wrapper: str,
    command: str,
    args: list[Any],
    kwargs: dict[str, Any],
    clients: dict[str, RawClient],
) -> None:
    before = snapshot(clients["admin"], FOREIGN)
    for in_pipeline in (False, True):
        answer = run(clients["scoped"], wrapper, in_pipeline, command, args, kwargs)
        assert error_type(answer) == "TypeError", answer
        assert "Invalid arguments" in answer["error"]["msg"]
    assert snapshot(clients["admin"], FOREIGN) == before


def test_the_reported_bypasses_are_closed(clients: dict[str, RawClient]) -> None:
    """The exact calls of the report (issue 12), each of which used to go through."""
    scoped, ro, admin = clients["scoped"], clients["scoped-ro"], clients["admin"]
    before = snapshot(admin, FOREIGN)
    for client in (scoped, ro):
        answer = client.call("mget", [[], {"keys": [FOREIGN["string"]]}])
        assert error_type(answer) == "PermissionDeniedError", answer
        answer = client.call("mget", [[OWN["string"], FOREIGN["string"]], {}])  # *args
        assert error_type(answer) == "PermissionDeniedError", answer
        pipe = [[], {"message": [["mget", [[], {"keys": [FOREIGN["string"]]}]]]}]
        assert error_type(client.call("pipeline", pipe)) == "PermissionDeniedError"
        packed = encode_buffer(dumps_call([], {"keys": [FOREIGN["string"]]}), compress=True)
        answer = client.call("compressed_message", {"event": "mget", "data": packed})
        assert error_type(answer) == "PermissionDeniedError", answer
    copy_out = {"source": FOREIGN["string"], "destination": OWN_2["string"]}
    copy_over = {"source": OWN["string"], "destination": FOREIGN["string"], "replace": True}
    move_out = {"src": FOREIGN["set"], "dst": OWN["set"], "value": "secret"}
    for kwargs in (copy_out, copy_over, move_out):
        command = "smove" if "src" in kwargs else "copy"
        answer = scoped.call(command, [[], kwargs])
        assert error_type(answer) == "PermissionDeniedError", (kwargs, answer)
    assert snapshot(admin, FOREIGN) == before


def test_flushall_needs_a_token_for_every_key(clients: dict[str, RawClient]) -> None:
    for token in ("scoped", "scoped-ro", "b"):
        for wrapper in WRAPPERS:
            answer = send(clients[token], wrapper, "flushall", [[], {}])
            assert error_type(answer) == "PermissionDeniedError", answer
    assert clients["admin"].cmd("get", FOREIGN["string"]) == {"data": "secret"}


def test_no_command_lists_keys_and_the_series_listing_is_filtered(
    gateway: tuple[ServerProcess, int], clients: dict[str, RawClient], tstorage: ServerProcess
) -> None:
    for event, payload in [
        ("keys", [["*"], {}]),
        ("scan", [[0], {"match": "*"}]),
        ("scan_iter", [[], {}]),
    ]:
        answer = clients["scoped"].call(event, payload)
        assert error_type(answer) == "UnknownEventError", answer
    cid = gateway[1]
    t0 = 800_000_000 * 10**9
    put_direct(
        tstorage,
        [((cid, 1, 1, t0), struct.pack("<d", 1.0)), ((cid, 2, 1, t0), struct.pack("<d", 2.0))],
    )

    def listed(token: str) -> set[str]:
        reply = clients[token].call("dashboard:series", [[], {}])
        return {entry["key"] for entry in reply["data"]["series"]}

    assert {"meters/1/1", "meters/2/1"} <= listed("admin")
    assert listed("b") == {"meters/2/1"}
    assert listed("scoped") == set()


# ---------------------------------------------------------------- adapter events
@pytest.fixture(scope="module")
def adapters(clients: dict[str, RawClient]) -> dict[str, RawClient]:
    """The admin owns adapters for b/x and for a/own; each answers 3 and records the call."""
    admin = clients["admin"]
    admin.adapter_answer = 3
    for key in ("znsocket.List:b/x", "znsocket.List:a/own"):
        assert admin.call("register_adapter", [[], {"key": key}]) is True
    return clients


@pytest.mark.parametrize("wrapper", WRAPPERS)
def test_adapter_events_check_every_key_field(wrapper: str, adapters: dict[str, RawClient]) -> None:
    scoped, ro, admin = adapters["scoped"], adapters["scoped-ro"], adapters["admin"]
    asked = len(admin.adapter_requests)
    own, foreign = "znsocket.List:a/own", "znsocket.List:b/x"
    refused_reads = [
        [[], {"key": foreign, "name": "znsocket.List:a/own", "method": "__len__"}],  # decoy name
        [[], {"key": own, "name": foreign, "method": "__len__"}],
        [[], {"key": own, "method": "copy", "target": "b/x"}],  # the owner would write b/x
        [[foreign], {"key": own, "method": "__len__"}],  # smuggled in the positional part
    ]
    for payload in refused_reads:
        answer = send(scoped, wrapper, "adapter:get", payload)
        assert error_type(answer) in {"PermissionDeniedError", "TypeError"}, (payload, answer)
    assert len(admin.adapter_requests) == asked  # the owner was never asked
    # read-only tokens may not make an owner copy, even between their own keys
    answer = send(ro, wrapper, "adapter:get", [[], {"key": own, "method": "copy", "target": "a/2"}])
    assert error_type(answer) == "PermissionDeniedError"
    # the tokens' own adapter works through the same path, for reading tokens too
    for client in (scoped, ro):
        assert send(client, wrapper, "adapter:get", [[], {"key": own, "method": "__len__"}]) == 3

    # no registration of a foreign key, whatever other field names an own one
    fresh = f"znsocket.List:b/new-{wrapper}"
    for key in (foreign, fresh):
        answer = send(scoped, wrapper, "register_adapter", [[], {"key": key, "name": "a/1"}])
        assert error_type(answer) == "PermissionDeniedError", answer
    assert send(admin, wrapper, "adapter:get", [[], {"key": foreign, "method": "__len__"}]) == 3
    assert admin.call("adapter_exists", [[], {"key": fresh}]) is False

    # asking about a foreign adapter says "none" and leaves no trace: its owner can still register
    unseen = f"znsocket.List:b/unseen-{wrapper}"
    assert send(scoped, wrapper, "adapter_exists", [[], {"key": foreign}]) is False
    assert send(scoped, wrapper, "check_adapter", [[], {"key": unseen}]) is False
    assert admin.call("register_adapter", [[], {"key": unseen}]) is True
    assert send(scoped, wrapper, "check_adapter", [[], {"key": own}]) is True


EVENT_FIELDS = ("key", "target", "name")


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    event=st.sampled_from(
        ["adapter:get", "register_adapter", "check_adapter", "adapter_exists", "refresh"]
    ),
    foreign=st.sets(st.sampled_from(EVENT_FIELDS), min_size=1),
    present=st.sets(st.sampled_from(EVENT_FIELDS)),
    spelling=st.sampled_from(SPELLINGS),
    wrapper=st.sampled_from(WRAPPERS),
    token=st.sampled_from(["scoped", "scoped-ro"]),
)
def test_an_event_naming_b_x_in_any_field_is_refused(
    adapters: dict[str, RawClient],
    event: str,
    foreign: set[str],
    present: set[str],
    spelling: str,
    wrapper: str,
    token: str,
) -> None:
    admin = adapters["admin"]
    asked = len(admin.adapter_requests)
    head = "target" if event == "refresh" else "key"  # the field the server acts on
    fields: dict[str, Any] = {"method": "__len__"}
    for name in {head} | present | foreign:
        fields[name] = spelling.format("b/x") if name in foreign else "znsocket.List:a/own"
    client = adapters[token]
    if event == "refresh":  # its payload is not [args, kwargs]: it travels plain only
        answer = client.call("refresh", fields)
    else:
        answer = send(client, wrapper, event, [[], fields])
    if event in ("check_adapter", "adapter_exists"):
        assert answer is False, (event, fields, answer)
    else:
        assert error_type(answer) == "PermissionDeniedError", (event, fields, answer)
    assert len(admin.adapter_requests) == asked
    # b/x keeps its owner, and no foreign key gained one
    assert admin.call("adapter_exists", [[], {"key": "znsocket.List:b/x"}]) is True
    for key in {fields[f] for f in foreign}:
        if key != "znsocket.List:b/x":
            assert admin.call("adapter_exists", [[], {"key": key}]) is False


# ----------------------------------------------------------------------- refresh
def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def targets(client: RawClient) -> list[str]:
    return [r["target"] for r in client.refreshes]


def relayed(client: RawClient) -> list[str]:
    """The targets of refreshes other than those of the gateway's change feed (meters)."""
    return [t for t in targets(client) if "meters/" not in t]


def test_refresh_reaches_only_clients_that_may_read_its_target(
    gateway: tuple[ServerProcess, int], tstorage: ServerProcess, clients: dict[str, RawClient]
) -> None:
    scoped, ro, b, admin = clients["scoped"], clients["scoped-ro"], clients["b"], clients["admin"]
    for c in clients.values():
        c.refreshes.clear()
    # relayed from a client. Events reach each client in the order they were sent, so
    # once a client has the last one meant for it, it has all it will ever get of these
    sent = ["znsocket.List:b/x", "znsocket.Dict:b/x-hash", "znsocket.List:a/1"]
    for target in [*sent, "znsocket.List:b/end", "znsocket.List:a/end"]:
        admin.call("refresh", {"target": target, "data": {"start": 0, "stop": None}})
    assert wait_for(
        lambda: "znsocket.List:a/end" in relayed(scoped) and "znsocket.List:a/end" in relayed(ro)
    )
    assert wait_for(lambda: "znsocket.List:b/end" in relayed(b))
    assert relayed(scoped) == relayed(ro) == ["znsocket.List:a/1", "znsocket.List:a/end"]
    assert relayed(b) == ["znsocket.List:b/x", "znsocket.Dict:b/x-hash", "znsocket.List:b/end"]
    assert relayed(admin) == []  # never to the sender
    # nor may an a/* token announce a change of b/x
    answer = scoped.call("refresh", {"target": "znsocket.List:b/x", "data": {}})
    assert error_type(answer) == "PermissionDeniedError"

    # found by following TStorage: a record of meters/2/1 written by another program
    for c in clients.values():
        c.refreshes.clear()
    cid = gateway[1]
    assert "error" not in admin.cmd("llen", "znsocket.List:meters/2/1")  # the gateway follows it
    put_direct(tstorage, [((cid, 2, 1, 900_000_000 * 10**9), struct.pack("<d", 5.0))])
    assert wait_for(lambda: "znsocket.List:meters/2/1" in targets(admin))
    assert wait_for(lambda: "znsocket.List:meters/2/1" in targets(b))
    admin.call("refresh", {"target": "znsocket.List:a/2", "data": {}})  # sent after the follow
    assert wait_for(lambda: "znsocket.List:a/2" in targets(scoped))
    assert targets(scoped) == ["znsocket.List:a/2"]


def test_refresh_across_gateways_reaches_only_clients_that_may_read_it(
    tmp_path: Path,
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
    redis_url: str,
) -> None:
    queue = f'\n[server]\nmessage_queue = "{redis_url}"\n'
    text = meter_config(tstorage, fresh_cid(), fresh_cid()).replace(
        "[tstorage]", queue + "\n[tstorage]", 1
    )
    (tmp_path / "g.toml").write_text(text + AUTH)
    argv = ["gateway", "run", "--config", str(tmp_path / "g.toml"), "--port", "0"]
    with spawn(argv, env=ENV) as one, spawn(argv, env=ENV) as two:
        admin = RawClient(one.url, auth={"token": TOKENS["admin"]})
        scoped = RawClient(two.url, auth={"token": TOKENS["scoped"]})
        b = RawClient(two.url, auth={"token": TOKENS["b"]})
        try:
            sent = [
                "znsocket.List:b/x",
                "znsocket.List:a/1",
                "znsocket.List:b/end",
                "znsocket.List:a/end",
            ]
            for target in sent:
                admin.call("refresh", {"target": target, "data": {}})
            # in order per client: once the last one arrived, all have
            assert wait_for(lambda: "znsocket.List:a/end" in targets(scoped))
            assert wait_for(lambda: "znsocket.List:b/end" in targets(b))
            assert targets(scoped) == ["znsocket.List:a/1", "znsocket.List:a/end"]
            assert targets(b) == ["znsocket.List:b/x", "znsocket.List:b/end"]
        finally:
            for c in (admin, scoped, b):
                c.close()

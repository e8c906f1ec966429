"""Token authentication and per-key authorisation of a running gateway."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import znsocket
from gateway.auth import TokenPolicy
from gateway.config import load_config
from tests._servers import ServerProcess, spawn
from tests.gateway.conftest import meter_config

pytestmark = pytest.mark.integration

AUTH = """
[auth]
enabled = true

[[auth.tokens]]
name = "viewer"
env = "GW_TEST_VIEWER"
access = "read"
keys = ["meters/*"]

[[auth.tokens]]
name = "writer"
env = "GW_TEST_WRITER"
access = "read-write"
keys = ["meters/1/*", "meters/1", "scratch"]
"""
ENV = {"GW_TEST_VIEWER": "view-secret", "GW_TEST_WRITER": "write-secret"}


@pytest.fixture
def gateway(
    tmp_path: Path, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> Iterator[ServerProcess]:
    path = tmp_path / "gateway.toml"
    path.write_text(meter_config(tstorage, fresh_cid(), fresh_cid()) + AUTH)
    proc = spawn(["gateway", "run", "--config", str(path), "--port", "0"], env=ENV)
    yield proc
    proc.stop()


def connect(gw: ServerProcess, token: str | None) -> znsocket.Client:
    return znsocket.Client.from_url(f"znsocket://127.0.0.1:{gw.port}", token=token)


def test_tokens_gate_connections_writes_and_keys(gateway: ServerProcess) -> None:
    for bad in (None, "wrong"):
        with pytest.raises(Exception):  # noqa: B017 - refused at connect, whatever the client class
            connect(gateway, bad).get("x")
    writer = connect(gateway, "write-secret")
    znsocket.List(writer, "meters/1/1").append(1.0)
    writer.set("scratch", "x")
    with pytest.raises(znsocket.exceptions.ZnSocketError, match="may not touch key 'meters/2/1'"):
        znsocket.List(writer, "meters/2/1").append(1.0)
    viewer = connect(gateway, "view-secret")
    assert znsocket.List(viewer, "meters/1/1")[:] == [1.0]
    assert dict(znsocket.Dict(viewer, "meters/1")) == {"1": 1.0}
    with pytest.raises(znsocket.exceptions.ZnSocketError, match="read-only"):
        znsocket.List(viewer, "meters/1/1").append(2.0)
    with pytest.raises(znsocket.exceptions.ZnSocketError, match="may not touch key 'scratch'"):
        viewer.get("scratch")
    assert gateway.alive()


def test_bulk_columns_need_write_access(gateway: ServerProcess) -> None:
    import numpy as np

    from gateway import TimeSeries

    caps = np.arange(1, 4, dtype=np.int64) * 10**9
    writer = connect(gateway, "write-secret")
    assert TimeSeries(writer, "meters/1/2").extend(caps, np.arange(3.0)) == 3
    with pytest.raises(znsocket.exceptions.ZnSocketError, match="may not touch key 'meters/2/1'"):
        TimeSeries(writer, "meters/2/1").extend(caps, np.arange(3.0))
    viewer = connect(gateway, "view-secret")
    with pytest.raises(znsocket.exceptions.ZnSocketError, match="read-only"):
        TimeSeries(viewer, "meters/1/2").extend(caps + 10**10, np.arange(3.0))
    assert TimeSeries(viewer, "meters/1/2").range().v.tolist() == [0.0, 1.0, 2.0]


def test_gateway_refuses_to_start_without_token_secrets(
    tmp_path: Path, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(meter_config(tstorage, fresh_cid(), fresh_cid()) + AUTH)
    with pytest.raises(RuntimeError, match="GW_TEST_VIEWER is not set"):
        spawn(
            ["gateway", "run", "--config", str(path), "--port", "0"],
            env={"GW_TEST_VIEWER": ""},
            timeout=20,
        )


def test_policy_without_a_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    path = tmp_path / "g.toml"
    path.write_text('[tstorage]\nhost = "127.0.0.1"\nport = 1\n' + AUTH)
    policy = TokenPolicy(load_config(path).auth)
    writer = policy.authenticate({}, {"token": "write-secret"})
    assert writer is not None and writer.name == "writer"
    assert policy.authenticate({"HTTP_AUTHORIZATION": "Bearer view-secret"}, None).name == "viewer"  # type: ignore[union-attr]
    assert policy.authenticate({}, {"token": "nope"}) is None
    policy.authorize(writer, "rpush", ["znsocket.List:meters/1/5", "1"], {})
    with pytest.raises(znsocket.exceptions.PermissionDeniedError):
        policy.authorize(writer, "flushall", [], {})
    with pytest.raises(znsocket.exceptions.PermissionDeniedError):
        policy.authorize(writer, "delete", ["scratch", "other"], {})

"""Fixtures of the gateway tests: a real TStorage server process and gateway storages on it.

TStorage cannot delete, so every test works under its own cids (``fresh_cid``), which
stands in for a flush between tests.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.config import GatewayConfig, load_config
from gateway.storage import GatewayStorage, LinkSettings, TStorageLink
from tests._config_text import meter_rules
from tests._servers import ServerProcess, spawn
from tests._upstream import free_port

_cids = itertools.count(1000)


@pytest.fixture(scope="session")
def tstorage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One durable TStorage server for the session (``tstorage-server --port 0``)."""
    data = tmp_path_factory.mktemp("tstorage")
    with spawn(["tstorage-server", "--data-dir", str(data), "--port", "0"]) as proc:
        yield proc


def tstorage_server(data: Path, port: int = 0, *extra: str) -> ServerProcess:
    return spawn(["tstorage-server", "--data-dir", str(data), "--port", str(port), *extra])


@pytest.fixture
def own_tstorage(tmp_path: Path) -> Iterator[ServerProcess]:
    """A TStorage server of the test's own, which it may stop (SIGSTOP) or kill."""
    proc = tstorage_server(tmp_path / "ts")
    yield proc
    if proc.alive():
        os.kill(proc.pid, signal.SIGCONT)
    proc.stop()


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Callable[[str], ServerProcess]]:
    """Start ``gateway run`` processes on config texts; all are stopped after the test."""
    procs: list[ServerProcess] = []

    def start(config_text: str) -> ServerProcess:
        path = tmp_path / f"gateway-{len(procs)}.toml"
        path.write_text(config_text)
        proc = spawn(["gateway", "run", "--config", str(path), "--port", "0"])
        procs.append(proc)
        return proc

    yield start
    for p in procs:
        p.stop()


@pytest.fixture(scope="session")
def fresh_cid() -> Callable[[], int]:
    """Hands out cids no other test of the session uses."""
    return lambda: next(_cids)


def meter_config(tstorage: ServerProcess, cid: int, generic_cid: int, extra: str = "") -> str:
    """A config text mapping ``meters/{mid}/{moid}`` Lists and ``meters/{mid}`` Dicts."""
    return (
        textwrap.dedent(
            f"""
        [tstorage]
        host = "127.0.0.1"
        port = {tstorage.port}

        [generic]
        cid = {generic_cid}

        """
        )
        + meter_rules(cid)
        + textwrap.dedent(extra)
    )


@pytest.fixture
def make_storage(
    tstorage: ServerProcess, tmp_path: Path
) -> Iterator[Callable[[str], GatewayStorage]]:
    """Build a :class:`GatewayStorage` from config text (on the session's TStorage; with
    ``[tstorage.journal]``, writes are acknowledged from its journal as ``gateway run`` does)."""
    links: list[TStorageLink] = []

    def make(text: str) -> GatewayStorage:
        path = tmp_path / f"gateway-{len(links)}.toml"
        path.write_text(text)
        cfg: GatewayConfig = load_config(path)
        t = cfg.tstorage
        assert t.host is not None and t.port is not None
        link = TStorageLink(LinkSettings.for_config(t, t.host, t.port))
        if t.journal is not None:
            link.write_behind(t.journal)
        links.append(link)
        storage = GatewayStorage(link, cfg)
        storage.load()
        return storage

    yield make
    for link in links:
        link.close()


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A throwaway Redis server on a free loopback port (no persistence)."""
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    import redis

    r = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            r.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    r.close()
    proc.terminate()
    proc.wait(10)

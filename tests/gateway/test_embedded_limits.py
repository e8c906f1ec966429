"""``[tstorage.embedded.limits]``: checked with the rest of the file, and obeyed by the
embedded TStorage server."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gateway.app import EmbeddedTStorage
from gateway.config import check_config, load_config
from tests.tstorage_server.wire import ERROR_GET_ACQ, GET_ACQ, KEY_MAX, KEY_MIN, Raw, key_range

CONFIG = """
[tstorage.embedded]
data_dir = "data"

[tstorage.embedded.limits]
{limits}
"""


def write(tmp_path: Path, limits: str = "") -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(textwrap.dedent(CONFIG.format(limits=limits)))
    return path


def test_limits_are_optional_and_checked(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path))
    assert cfg.tstorage.embedded is not None and cfg.tstorage.embedded.limits.given() == {}
    cfg = load_config(write(tmp_path, limits="max_connections = 5\nidle_timeout = 2.5"))
    assert cfg.tstorage.embedded is not None
    assert cfg.tstorage.embedded.limits.given() == {"max_connections": 5, "idle_timeout": 2.5}
    _, issues = check_config(write(tmp_path, limits="max_connections = 0\nrequest_timeout = -1"))
    assert {i.location for i in issues if i.severity == "error"} >= {
        "tstorage.embedded.limits.max_connections",
        "tstorage.embedded.limits.request_timeout",
    }


@pytest.mark.integration
def test_the_embedded_server_obeys_them(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "max_connections = 1"))
    assert cfg.tstorage.embedded is not None
    server = EmbeddedTStorage(cfg.tstorage.embedded).start()
    try:
        with Raw(server.port) as first:
            assert first.get_acq(KEY_MIN, KEY_MAX)[0] == 0
            with Raw(server.port) as second:  # one more than the limit
                second.send(key_range(GET_ACQ, KEY_MIN, KEY_MAX))
                assert second.recv_until_close(timeout=10) == ERROR_GET_ACQ
            assert first.get_acq(KEY_MIN, KEY_MAX)[0] == 0
    finally:
        server.stop()

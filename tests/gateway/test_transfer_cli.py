"""The command line of `gateway import`/`export`: formats, progress bar, output file, help."""

from __future__ import annotations

import fcntl
import os
import pty
import socket
import struct
import subprocess
import sys
import termios
from collections.abc import Callable
from pathlib import Path

import znsocket
from tests._servers import ServerProcess
from tests.gateway.test_storage_series import records_of
from tests.gateway.test_transfer import gateway, write_config


def on_a_terminal(*args: str) -> tuple[int, str]:
    """``gateway ARGS`` with standard error on a pseudo-terminal; (status, what it showed)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # 120 columns
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
    )
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    return proc.wait(120), shown.decode(errors="replace")


def test_progress_bar_on_a_terminal_only_and_quiet_turns_it_off(
    tmp_path: Path, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    config = write_config(tmp_path / "g.toml", tstorage, fresh_cid(), fresh_cid())
    rows = tmp_path / "in.csv"
    rows.write_text("v\n" + "".join(f"{i}.5\n" for i in range(300)))
    status, shown = on_a_terminal(
        "import", str(rows), "--key", "meters/1/1", "--config", str(config)
    )
    assert status == 0, shown
    assert "import meters/1/1: 100%" in shown and "300/300" in shown
    assert "imported 300 row(s) into meters/1/1" in shown

    status, shown = on_a_terminal("export", "--key", "meters/1/1", "--config", str(config))
    assert status == 0 and "export meters/1/1: 100%" in shown and "300/300" in shown

    status, shown = on_a_terminal(
        "export", "--key", "meters/1/1", "-o", str(tmp_path / "o.csv"), "--quiet",
        "--config", str(config),
    )  # fmt: skip
    assert status == 0 and shown == ""

    # Not a terminal (a pipe, a log file): no bar, just the summary.
    res = gateway("import", str(rows), "--key", "meters/1/2", "--config", str(config))
    assert res.returncode == 0 and res.stderr == "imported 300 row(s) into meters/1/2\n"


def test_format_follows_option_then_extension(
    tmp_path: Path, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    config = write_config(tmp_path / "g.toml", tstorage, fresh_cid(), fresh_cid())
    odd = tmp_path / "keys.txt"
    odd.write_text('{"key": "a", "type": "string", "value": "1"}\n')
    res = gateway("import", str(odd), "--config", str(config))
    assert res.returncode == 1
    assert "cannot tell the format of" in res.stderr and "--format" in res.stderr
    res = gateway("import", str(odd), "--format", "jsonl", "--config", str(config))
    assert res.returncode == 0, res.stderr
    nd = tmp_path / "keys.ndjson"
    res = gateway("export", "--key", "a", "-o", str(nd), "--config", str(config))
    assert res.returncode == 0 and nd.read_text().startswith('{"key": "a"')
    res = gateway("export", "--key", "a", "-o", str(tmp_path / "a.csv"), "--config", str(config))
    assert res.returncode == 1 and "not a List or Dict key of any map rule" in res.stderr
    assert ".jsonl" in res.stderr
    res = gateway("import", str(nd), "--format", "csv", "--config", str(config))
    assert res.returncode == 1 and "a CSV import needs --key" in res.stderr
    rows = tmp_path / "in.csv"
    rows.write_text("v\n1\n")
    res = gateway("import", str(rows), "--key", "meters/1/1", "--replace", "--config", str(config))
    assert res.returncode == 1 and "--replace is for generic keys" in res.stderr
    res = gateway("import", str(tmp_path / "missing.csv"), "--key", "x", "--config", str(config))
    assert res.returncode == 1 and f"{tmp_path / 'missing.csv'}: no such file" in res.stderr


def test_a_failed_export_leaves_the_output_file_as_it_was(
    tmp_path: Path, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    config = write_config(tmp_path / "g.toml", tstorage, fresh_cid(), fresh_cid())
    out = tmp_path / "keep.csv"
    out.write_text("precious\n")
    res = gateway("export", "--key", "meters/x/1", "-o", str(out), "--config", str(config))
    assert res.returncode == 1 and "not a canonical integer" in res.stderr
    assert out.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.toml", "keep.csv"]


def test_tstorage_unreachable_is_a_clear_error(
    tmp_path: Path, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cid = fresh_cid()
    config = tmp_path / "g.toml"
    write_config(config, tstorage, cid, fresh_cid())
    config.write_text(
        config.read_text().replace(f"port = {tstorage.port}", f"port = {port}\ntimeout = 2")
    )
    rows = tmp_path / "in.csv"
    rows.write_text("v\n1\n")
    res = gateway("import", str(rows), "--key", "meters/1/1", "--config", str(config))
    assert res.returncode == 1 and f"127.0.0.1:{port}" in res.stderr
    assert "Traceback" not in res.stderr
    assert records_of(tstorage, cid) == []
    # an export writes nothing, not even its header, when TStorage does not answer
    for where in ([], ["--tstorage", f"127.0.0.1:{port}"]):
        res = gateway("export", "--key", "meters/1/1", "--config", str(config), *where)
        assert res.returncode == 1 and f"127.0.0.1:{port}" in res.stderr
        assert res.stdout == "" and "Traceback" not in res.stderr


def test_help_explains_both_formats() -> None:
    for command in ("import", "export"):
        res = gateway(command, "--help")
        assert res.returncode == 0
        text = " ".join(res.stdout.split())
        assert "field,t,v" in text and "JSON Lines" in text and "--format" in text
        assert "--quiet" in text and "--key" in text
    assert "--replace" in gateway("import", "--help").stdout
    assert "SCAN MATCH" in " ".join(gateway("export", "--help").stdout.split())


def test_embedded_tstorage_while_the_gateway_is_stopped_and_while_it_runs(
    tmp_path: Path, start_gateway: Callable[[str], ServerProcess]
) -> None:
    config = tmp_path / "g.toml"
    config.write_text(
        f'[tstorage.embedded]\ndata_dir = "{tmp_path / "data"}"\n\n'
        '[[map]]\npattern = "meters/{mid:int}/{moid:int}"\ncid = 1\nmid = "{mid}"\n'
        'moid = "{moid}"\ncodec = "struct:<d"\n'
    )
    rows = tmp_path / "in.csv"
    rows.write_bytes("\ufefft,v\n1700000000000000000,1.5\n".encode())  # a spreadsheet's BOM
    res = gateway("import", str(rows), "--key", "meters/1/1", "--config", str(config))
    assert res.returncode == 0, res.stderr
    gw = start_gateway(config.read_text())
    client = znsocket.Client.from_url(f"znsocket://127.0.0.1:{gw.port}")
    assert list(znsocket.List(client, "meters/1/1")) == [1.5]
    # while it runs, through the address its TStorage server wrote in the data directory
    res = gateway("export", "--key", "meters/1/1", "--config", str(config))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "t,v\n1700000000000000000,1.5\n"

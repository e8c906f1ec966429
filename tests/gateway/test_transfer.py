"""`gateway import` and `gateway export` as a user runs them (real TStorage process)."""

from __future__ import annotations

import csv
import io
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests._servers import ServerProcess, spawn
from tests.gateway.conftest import meter_config
from tests.gateway.test_storage_series import records_of


def gateway(*args: str) -> subprocess.CompletedProcess[str]:
    """``gateway ARGS`` as a user runs it (stdin closed, stdout/stderr not a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def empty_tstorage(factory: pytest.TempPathFactory) -> ServerProcess:
    """Start a second, empty TStorage server (where an export is restored)."""
    data = factory.mktemp("tstorage-restore")
    return spawn(["tstorage-server", "--data-dir", str(data), "--port", "0"])


def write_config(
    path: Path, tstorage: ServerProcess, cid: int, generic_cid: int, extra: str = ""
) -> Path:
    """A gateway config file on ``tstorage``: ``meters/{mid}/{moid}`` Lists, ``meters/{mid}``
    Dicts (fields by moid) under ``cid``, generic keys under ``generic_cid``."""
    path.write_text(meter_config(tstorage, cid, generic_cid, extra))
    return path


def test_import_then_export_round_trip(
    tmp_path: Path, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    cid = fresh_cid()
    config = tmp_path / "g.toml"
    config.write_text(
        meter_config(tstorage, cid, fresh_cid()).replace(
            'codec = "struct:<d"', 'codec = "struct:<d"\ntime = "tstorage_ns"', 1
        )
    )
    rows = tmp_path / "in.csv"
    rows.write_text("t,v\n" + "".join(f"{1000 + i},{i * 0.25}\n" for i in range(25_000)))
    res = gateway("import", str(rows), "--key", "meters/3/4", "--config", str(config))
    assert res.returncode == 0, res.stderr
    assert "imported 25000 row(s)" in res.stderr
    recs = records_of(tstorage, cid)
    assert len(recs) == 25_000
    assert recs[0] == ((cid, 3, 4, 1000), struct.pack("<d", 0.0))
    assert recs[-1] == ((cid, 3, 4, 1000 + 24_999), struct.pack("<d", 24_999 * 0.25))
    res = gateway("export", "--key", "meters/3/4", "--config", str(config))
    assert res.returncode == 0, res.stderr
    out = list(csv.reader(io.StringIO(res.stdout)))
    assert out[0] == ["t", "v"] and len(out) == 25_001
    assert out[1] == ["1000", "0.0"] and out[-1] == [str(1000 + 24_999), str(24_999 * 0.25)]


def test_import_reports_bad_rows_and_keys(
    tmp_path: Path, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    cid = fresh_cid()
    config = tmp_path / "g.toml"
    config.write_text(meter_config(tstorage, cid, fresh_cid()))
    bad = tmp_path / "bad.csv"
    bad.write_text("v\n1.5\nhello\n")
    res = gateway("import", str(bad), "--key", "meters/1/1", "--config", str(config))
    assert res.returncode == 1 and f"{bad}:3:" in res.stderr and "needs a number" in res.stderr
    assert records_of(tstorage, cid) == []  # the failing batch is not stored
    no_v = tmp_path / "nov.csv"
    no_v.write_text("x\n1\n")
    res = gateway("import", str(no_v), "--key", "meters/1/1", "--config", str(config))
    assert res.returncode == 1 and "'v' column" in res.stderr
    res = gateway("export", "--key", "nothing/here", "--config", str(config))
    assert res.returncode == 1 and "not a List or Dict key" in res.stderr


def test_list_csv_with_a_dict_header_or_not_utf8_is_refused(
    tmp_path: Path, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    cid = fresh_cid()
    config = write_config(tmp_path / "g.toml", tstorage, cid, fresh_cid())
    f = tmp_path / "rows.csv"
    f.write_text("field,t,v\n3,1,1.5\n")
    res = gateway("import", str(f), "--key", "meters/1/1", "--config", str(config))
    assert res.returncode == 1
    assert f"{f}:1: the header has unexpected column(s) 'field'" in res.stderr
    assert "meters/1/1 is a List, whose CSV has the columns t, v" in res.stderr
    f.write_bytes(b"v\n1.5\n\xff\n")
    res = gateway("import", str(f), "--key", "meters/1/1", "--config", str(config))
    assert res.returncode == 1 and f"{f}: not UTF-8 text" in res.stderr
    assert "Traceback" not in res.stderr
    assert records_of(tstorage, cid) == []

"""CSV times as ISO-8601 (import and `export --time iso`), and an export with no records."""

from __future__ import annotations

import csv
import io
import struct
from collections.abc import Callable
from pathlib import Path

from tests._servers import ServerProcess
from tests.gateway.test_storage_series import records_of
from tests.gateway.test_transfer import gateway, write_config

EPOCH_UNIX_S = 978_307_200  # TStorage counts from 2001-01-01 UTC


def test_iso_times_import_and_export_exactly(
    tmp_path: Path, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    cid = fresh_cid()
    config = write_config(tmp_path / "g.toml", tstorage, cid, fresh_cid())
    rows = tmp_path / "in.csv"
    rows.write_text(
        "t,v\n"
        "2023-11-14T22:13:20Z,1.0\n"  # unix 1700000000
        "2023-11-14T22:13:20.000000001Z,2.0\n"  # nanoseconds are kept
        "2023-11-14T23:13:21+01:00,3.0\n"  # an offset: 1 s later than the first
        "2023-11-14 22:13:22,4.0\n"  # no zone: UTC
        "1700000003000000000,5.0\n"  # the rule's unit (unix_ns) still works
    )
    res = gateway("import", str(rows), "--key", "meters/1/1", "--config", str(config))
    assert res.returncode == 0, res.stderr
    base = (1_700_000_000 - EPOCH_UNIX_S) * 10**9
    assert [k[3] for k, _ in records_of(tstorage, cid)] == [
        base,
        base + 1,
        base + 10**9,
        base + 2 * 10**9,
        base + 3 * 10**9,
    ]
    res = gateway("export", "--key", "meters/1/1", "--config", str(config))
    assert res.returncode == 0, res.stderr
    assert list(csv.reader(io.StringIO(res.stdout)))[1] == ["1700000000000000000", "1.0"]
    out = tmp_path / "iso.csv"
    res = gateway(
        "export", "--key", "meters/1/1", "--time", "iso", "-o", str(out), "--config", str(config)
    )
    assert res.returncode == 0, res.stderr
    got = list(csv.reader(out.open()))
    assert got[:3] == [
        ["t", "v"],
        ["2023-11-14T22:13:20.000000000Z", "1.0"],
        ["2023-11-14T22:13:20.000000001Z", "2.0"],
    ]
    # the ISO export imports into another series with the same times
    res = gateway("import", str(out), "--key", "meters/1/2", "--config", str(config))
    assert res.returncode == 0, res.stderr
    recs = records_of(tstorage, cid)
    assert [k[3] for k, _ in recs if k[2] == 2] == [k[3] for k, _ in recs if k[2] == 1]


def test_a_bad_iso_time_is_refused_with_its_line(
    tmp_path: Path, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    cid = fresh_cid()
    config = write_config(tmp_path / "g.toml", tstorage, cid, fresh_cid())
    rows = tmp_path / "in.csv"
    rows.write_text("t,v\n2023-11-14T22:13:20Z,1.0\n2023-13-45T00:00:00Z,2.0\n")
    res = gateway("import", str(rows), "--key", "meters/1/1", "--config", str(config))
    assert res.returncode == 1 and f"{rows}:3:" in res.stderr
    assert "ISO-8601" in res.stderr and "Traceback" not in res.stderr
    assert records_of(tstorage, cid) == []  # nothing of the failing batch
    rows.write_text("t,v\n2400-01-01T00:00:00Z,1.0\n")
    res = gateway("import", str(rows), "--key", "meters/1/1", "--config", str(config))
    assert res.returncode == 1 and f"{rows}:2:" in res.stderr and "range" in res.stderr


def test_export_of_a_key_without_records_warns(
    tmp_path: Path, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    cid = fresh_cid()
    config = write_config(tmp_path / "g.toml", tstorage, cid, fresh_cid())
    res = gateway("export", "--key", "meters/9/9", "--config", str(config))
    assert res.returncode == 0 and res.stdout == "t,v\n"
    assert "warning: meters/9/9 has no records" in res.stderr
    res = gateway("export", "--key", "meters/9/9", "--quiet", "--config", str(config))
    assert res.returncode == 0 and "warning: meters/9/9 has no records" in res.stderr
    res = gateway("export", "--format", "jsonl", "--key", "none:*", "--config", str(config))
    assert res.returncode == 0 and "warning: no generic key matches 'none:*'" in res.stderr
    rows = tmp_path / "in.csv"
    rows.write_text("t,v\n1700000000000000000,1.5\n")
    assert (
        gateway("import", str(rows), "--key", "meters/9/9", "--config", str(config)).returncode == 0
    )
    res = gateway("export", "--key", "meters/9/9", "--config", str(config))
    assert res.returncode == 0 and "warning" not in res.stderr
    assert records_of(tstorage, cid)[0][1] == struct.pack("<d", 1.5)


def test_iso_text_is_exact_over_all_of_tstorage_time() -> None:
    # datetime64[ns] ends in 2262, TStorage's time in 2293: both ends still round-trip
    from gateway.transfer.series_csv import _cell_time, iso_times

    caps = [-(2**63), -1, 0, 1, 2**63 - 2]
    texts = iso_times(caps)
    assert texts[2:4] == ["2001-01-01T00:00:00.000000000Z", "2001-01-01T00:00:00.000000001Z"]
    assert texts[-1] == "2293-04-11T23:47:16.854775806Z"
    assert [_cell_time(t, "unix_ns") for t in texts] == caps

"""`gateway import`/`export` of mapped Dicts (meters) as ``field,t,v`` CSV, on real servers."""

from __future__ import annotations

import csv
import io
import struct
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

import znsocket
from tests._servers import ServerProcess
from tests.gateway.test_storage_series import records_of
from tests.gateway.test_transfer import empty_tstorage, gateway, write_config

PLANT_RULE = """
[[map]]
kind = "dict"
pattern = "plant/{mid:int}"
cid = %d
mid = "{mid}"
codec = "json"
time = "tstorage_ns"
fields = { voltage = 3, current = 4, state = 9 }
"""

ROWS = [
    ("voltage", "1000", "230.5"),
    ("current", "1000", "1.25"),
    ("voltage", "2000", "231.0"),
    ("state", "1500", '"on"'),
    ("current", "3000", "1.5"),
    ("state", "2500", "plain text"),
    ("voltage", "3000", '{"a": [1, 2]}'),
]


def csv_text(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(header)
    w.writerows(rows)
    return out.getvalue()


@pytest.fixture(scope="module")
def other_tstorage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with empty_tstorage(tmp_path_factory) as proc:
        yield proc


def plant_config(path: Path, ts: ServerProcess, fresh_cid: Callable[[], int]) -> tuple[Path, int]:
    """A config with the ``plant/{mid}`` Dict rule (named fields) under a cid of its own."""
    plant = fresh_cid()
    return write_config(path, ts, fresh_cid(), fresh_cid(), PLANT_RULE % plant), plant


def without_cid(recs: list[tuple[tuple[int, int, int, int], bytes]]) -> list[object]:
    return [(k[1:], v) for k, v in recs]


def test_dict_export_then_import_into_an_empty_tstorage_reproduces_it(
    tmp_path: Path,
    tstorage: ServerProcess,
    other_tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
    start_gateway: Callable[[str], ServerProcess],
) -> None:
    config, cid = plant_config(tmp_path / "a.toml", tstorage, fresh_cid)
    rows = tmp_path / "in.csv"
    rows.write_text(csv_text(("field", "t", "v"), ROWS))
    res = gateway("import", str(rows), "--key", "plant/5", "--config", str(config))
    assert res.returncode == 0, res.stderr
    assert "imported 7 row(s) into plant/5" in res.stderr
    recs = records_of(tstorage, cid)
    assert [k for k, _ in recs] == [
        (cid, 5, 3, 1000),
        (cid, 5, 3, 2000),
        (cid, 5, 3, 3000),
        (cid, 5, 4, 1000),
        (cid, 5, 4, 3000),
        (cid, 5, 9, 1500),
        (cid, 5, 9, 2500),
    ]

    exported = tmp_path / "plant5.csv"
    res = gateway("export", "--key", "plant/5", "-o", str(exported), "--config", str(config))
    assert res.returncode == 0, res.stderr
    assert f"exported 7 row(s) of plant/5 to {exported}" in res.stderr
    # every record of every field, fields in the rule's order, oldest first per field
    assert list(csv.reader(exported.open())) == [
        ["field", "t", "v"],
        ["voltage", "1000", "230.5"],
        ["voltage", "2000", "231.0"],
        ["voltage", "3000", '{"a": [1, 2]}'],
        ["current", "1000", "1.25"],
        ["current", "3000", "1.5"],
        ["state", "1500", '"on"'],
        ["state", "2500", '"plain text"'],
    ]

    restored, cid2 = plant_config(tmp_path / "b.toml", other_tstorage, fresh_cid)
    res = gateway("import", str(exported), "--key", "plant/5", "--config", str(restored))
    assert res.returncode == 0, res.stderr
    assert without_cid(records_of(other_tstorage, cid2)) == without_cid(recs)
    again = gateway("export", "--key", "plant/5", "--config", str(restored))
    assert again.returncode == 0 and again.stdout == exported.read_text()

    # What a client of a gateway on the restored TStorage sees: the latest of each field.
    gw = start_gateway(restored.read_text())
    client = znsocket.Client.from_url(f"znsocket://127.0.0.1:{gw.port}")
    assert dict(znsocket.Dict(client, "plant/5")) == {
        "voltage": {"a": [1, 2]},
        "current": 1.5,
        "state": "plain text",
    }


def test_dict_fields_by_moid_and_rows_without_time(
    tmp_path: Path, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    cid = fresh_cid()
    config = write_config(tmp_path / "g.toml", tstorage, cid, fresh_cid())
    rows = tmp_path / "now.csv"
    rows.write_text("field,v\n3,1.5\n4,2.5\n3,1.75\n")
    res = gateway("import", str(rows), "--key", "meters/8", "--config", str(config))
    assert res.returncode == 0, res.stderr
    recs = records_of(tstorage, cid)
    assert [(k[2], v) for k, v in recs] == [
        (3, struct.pack("<d", 1.5)),
        (3, struct.pack("<d", 1.75)),  # "now" caps grow: the later row is the latest
        (4, struct.pack("<d", 2.5)),
    ]
    res = gateway("export", "--key", "meters/8", "--config", str(config))
    assert res.returncode == 0, res.stderr
    out = list(csv.reader(io.StringIO(res.stdout)))
    assert [(r[0], r[2]) for r in out] == [
        ("field", "v"),
        ("3", "1.5"),
        ("3", "1.75"),
        ("4", "2.5"),
    ]
    t3 = [int(r[1]) for r in out[1:3]]
    assert t3[0] < t3[1]  # unix_ns times of the records, oldest first


def test_dict_unknown_field_is_refused_with_its_line_and_nothing_of_the_batch_stored(
    tmp_path: Path, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    config, cid = plant_config(tmp_path / "g.toml", tstorage, fresh_cid)
    bad = tmp_path / "bad.csv"
    bad.write_text(csv_text(("field", "t", "v"), [*ROWS[:3], ("wattage", "4000", "1")]))
    res = gateway("import", str(bad), "--key", "plant/1", "--config", str(config))
    assert res.returncode == 1
    assert f"{bad}:5: 'znsocket.Dict:plant/1' has no field 'wattage'" in res.stderr
    assert "fields: 'voltage', 'current', 'state'" in res.stderr
    assert records_of(tstorage, cid) == []

    cid = fresh_cid()
    by_moid = write_config(tmp_path / "m.toml", tstorage, cid, fresh_cid())
    bad.write_text("field,v\n3,1\nthree,2\n")
    res = gateway("import", str(bad), "--key", "meters/1", "--config", str(by_moid))
    assert res.returncode == 1 and f"{bad}:3:" in res.stderr and "'three'" in res.stderr
    assert records_of(tstorage, cid) == []


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("t,v", "needs a 'field' column"),
        ("field,t", "needs a 'v' column"),
        ("field,t,v,unit", "has unexpected column(s) 'unit'"),
        ("field,v,v", "repeats column(s) 'v'"),
    ],
)
def test_dict_wrong_column_set_is_refused(
    tmp_path: Path,
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
    header: str,
    message: str,
) -> None:
    config, cid = plant_config(tmp_path / "g.toml", tstorage, fresh_cid)
    bad = tmp_path / "cols.csv"
    bad.write_text(header + "\n" + ",".join("1" for _ in header.split(",")) + "\n")
    res = gateway("import", str(bad), "--key", "plant/1", "--config", str(config))
    assert res.returncode == 1
    assert f"{bad}:1: the header {message}" in res.stderr
    assert "plant/1 is a Dict, whose CSV has the columns field, t, v" in res.stderr
    assert records_of(tstorage, cid) == []


def test_dict_rows_a_series_would_refuse_are_reported_by_line(
    tmp_path: Path, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    config, cid = plant_config(tmp_path / "g.toml", tstorage, fresh_cid)
    f = tmp_path / "rows.csv"

    def run(text: str) -> str:
        f.write_text(text)
        res = gateway("import", str(f), "--key", "plant/2", "--config", str(config))
        return res.stderr if res.returncode else ""

    assert run("field,t,v\nvoltage,5000,1\n") == ""
    err = run("field,t,v\ncurrent,100,1\nvoltage,4000,2\n")
    assert f"{f}:3: t=4000 lies before the last record of field 'voltage'" in err
    assert "(t=5000)" in err
    err = run("field,t,v\nvoltage,5000,3\n")
    assert f"{f}:2:" in err and "corrections are off" in err
    err = run("field,t,v\nstate,7000,1,2\n")
    assert f"{f}:2: the row has another number of cells than the header" in err
    err = run("field,t,v\nstate,soon,1\n")
    assert f"{f}:2: t='soon' is neither a number of tstorage_ns" in err
    assert [k[2:] for k, _ in records_of(tstorage, cid)] == [(3, 5000)]  # only the first


def test_earlier_batches_stay_stored_and_the_error_says_so(
    tmp_path: Path, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    config, cid = plant_config(tmp_path / "g.toml", tstorage, fresh_cid)
    big = tmp_path / "big.csv"
    body = "".join(f"voltage,{1000 + i},{i}\n" for i in range(10_001))
    big.write_text("field,t,v\n" + body + "wattage,1,1\n")
    res = gateway("import", str(big), "--key", "plant/3", "--config", str(config))
    assert res.returncode == 1
    assert f"{big}:10003: " in res.stderr
    assert (
        "import stopped after storing 10000 row(s); nothing of the failing batch was written"
        in res.stderr
    )
    assert len(records_of(tstorage, cid)) == 10_000

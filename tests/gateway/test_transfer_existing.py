"""`gateway import --existing error|skip|correct`: rows at times a series already holds."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

from tests._servers import ServerProcess
from tests.gateway.conftest import meter_config
from tests.gateway.test_storage_series import records_of
from tests.gateway.test_transfer import gateway


def config_for(
    path: Path, tstorage: ServerProcess, cid: int, generic_cid: int, corrections: bool
) -> Path:
    """Lists ``meters/{mid}/{moid}`` with times in TStorage ns (small numbers in files)."""
    extra = 'time = "tstorage_ns"\n' + ("allow_corrections = true\n" if corrections else "")
    path.write_text(
        meter_config(tstorage, cid, generic_cid).replace(
            'codec = "struct:<d"', f'codec = "struct:<d"\n{extra}', 1
        )
    )
    return path


def values(tstorage: ServerProcess, cid: int) -> list[tuple[int, float]]:
    return [(k[3], struct.unpack("<d", p)[0]) for k, p in records_of(tstorage, cid)]


def test_an_import_stopped_by_a_bad_row_runs_again_with_skip(
    tmp_path: Path, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    cid = fresh_cid()
    config = config_for(tmp_path / "g.toml", tstorage, cid, fresh_cid(), corrections=False)
    f = tmp_path / "rows.csv"
    # A first import stored three rows (an earlier batch) before stopping at a bad one.
    f.write_text("t,v\n10,1\n20,2\n30,3\n")
    assert gateway("import", str(f), "--key", "meters/1/1", "--config", str(config)).returncode == 0
    f.write_text("t,v\n10,1\n20,2\n30,3\n40,4\n50,5\n")  # the fixed file
    res = gateway("import", str(f), "--key", "meters/1/1", "--config", str(config))
    assert res.returncode == 1 and f"{f}:2: meters/1/1 already has a record at t=10" in res.stderr
    assert "--existing skip" in res.stderr
    res = gateway(
        "import", str(f), "--key", "meters/1/1", "--existing", "correct", "--config", str(config)
    )
    assert res.returncode == 1 and "corrections are off" in res.stderr
    assert "nothing was imported" in res.stderr
    assert values(tstorage, cid) == [(10, 1), (20, 2), (30, 3)]
    res = gateway(
        "import", str(f), "--key", "meters/1/1", "--existing", "skip", "--config", str(config)
    )
    assert res.returncode == 0, res.stderr
    assert "imported 2 row(s) into meters/1/1 (3 skipped: already stored)" in res.stderr
    assert values(tstorage, cid) == [(10, 1), (20, 2), (30, 3), (40, 4), (50, 5)]
    # skip leaves stored records as they are, even when the file's value differs;
    # a time before the last record that the series does not hold is still an error
    f.write_text("t,v\n20,99\n35,3.5\n")
    res = gateway(
        "import", str(f), "--key", "meters/1/1", "--existing", "skip", "--config", str(config)
    )
    assert res.returncode == 1 and f"{f}:3: t=35 lies before the last record" in res.stderr
    assert values(tstorage, cid)[1] == (20, 2)


def test_correct_overwrites_where_the_rule_allows_corrections(
    tmp_path: Path, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    cid = fresh_cid()
    config = config_for(tmp_path / "g.toml", tstorage, cid, fresh_cid(), corrections=True)
    f = tmp_path / "rows.csv"
    f.write_text("t,v\n10,1\n20,2\n")
    assert gateway("import", str(f), "--key", "meters/1/1", "--config", str(config)).returncode == 0
    f.write_text("t,v\n20,2.5\n30,3\n")
    # the default refuses a stored time even where corrections are allowed: a re-run
    # never overwrites by accident
    res = gateway("import", str(f), "--key", "meters/1/1", "--config", str(config))
    assert res.returncode == 1 and f"{f}:2: meters/1/1 already has a record at t=20" in res.stderr
    assert "--existing correct" in res.stderr
    assert values(tstorage, cid) == [(10, 1), (20, 2)]
    res = gateway(
        "import", str(f), "--key", "meters/1/1", "--existing", "correct", "--config", str(config)
    )
    assert res.returncode == 0, res.stderr
    assert "imported 2 row(s) into meters/1/1 (1 of them corrections)" in res.stderr
    # a correction is a newer record at the same time: readers see its value
    res = gateway("export", "--key", "meters/1/1", "--config", str(config))
    assert res.stdout == "t,v\n10,1.0\n20,2.5\n30,3.0\n"


def test_existing_is_for_csv_only(
    tmp_path: Path, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    config = config_for(tmp_path / "g.toml", tstorage, fresh_cid(), fresh_cid(), corrections=False)
    f = tmp_path / "keys.jsonl"
    f.write_text('{"key": "a", "type": "string", "value": "x"}\n')
    res = gateway("import", str(f), "--existing", "skip", "--config", str(config))
    assert res.returncode == 1 and "--existing is for CSV" in res.stderr
    assert "--existing" in gateway("import", "--help").stdout


def test_the_command_line_offers_the_policies_the_import_knows() -> None:
    # gateway/__main__.py keeps its own copy (it imports nothing heavy before eventlet)
    import gateway.__main__ as cli
    from gateway import transfer

    assert cli.EXISTING == transfer.EXISTING

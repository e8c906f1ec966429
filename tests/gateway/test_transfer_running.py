"""`gateway import`/`export` beside a running gateway on its embedded TStorage (run file),
and `--tstorage HOST:PORT` to name any running TStorage."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from pathlib import Path

import znsocket
from tests._servers import ServerProcess, spawn
from tests._tls import make_tls_files
from tests.gateway.test_storage_series import records_of
from tests.gateway.test_transfer import gateway, write_config
from tstorage_server import runfile

METERS = (
    '[[map]]\npattern = "meters/{mid:int}/{moid:int}"\ncid = 1\nmid = "{mid}"\n'
    'moid = "{moid}"\ncodec = "struct:<d"\n'
)


def embedded_config(path: Path, data: Path) -> Path:
    path.write_text(f'[tstorage.embedded]\ndata_dir = "{data}"\n\n{METERS}')
    return path


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not seen in time"
        time.sleep(0.1)


def test_import_and_export_while_the_gateway_runs_on_its_embedded_tstorage(
    tmp_path: Path, start_gateway: Callable[[str], ServerProcess]
) -> None:
    data = tmp_path / "data"
    config = embedded_config(tmp_path / "g.toml", data)
    gw = start_gateway(config.read_text())
    client = znsocket.Client.from_url(f"znsocket://127.0.0.1:{gw.port}")
    series = znsocket.List(client, "meters/1/1")
    series.append(0.5)  # a client of the running gateway wrote first
    rows = tmp_path / "in.csv"
    rows.write_text("t,v\n" + "".join(f"{2_000_000_000 + i}000000000,{i}.5\n" for i in range(3)))
    info = runfile.read(data)
    assert info is not None
    res = gateway("import", str(rows), "--key", "meters/1/1", "--config", str(config))
    assert res.returncode == 0, res.stderr
    assert f"through the TStorage serving {data} at {info.address}" in res.stderr
    assert "imported 3 row(s) into meters/1/1" in res.stderr
    # the running gateway's clients see the records
    eventually(lambda: len(series) == 4)
    assert list(series) == [0.5, 0.5, 1.5, 2.5]
    res = gateway("export", "--key", "meters/1/1", "--config", str(config))
    assert res.returncode == 0, res.stderr
    out = list(csv.reader(io.StringIO(res.stdout)))
    assert [v for _, v in out[1:]] == ["0.5", "0.5", "1.5", "2.5"]
    assert out[-1][0] == "2000000002000000000"
    assert gw.alive()
    client.close()


def test_a_stale_run_file_does_not_stop_an_import(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = spawn(["tstorage-server", "--data-dir", str(data), "--port", "0"])
    server.kill()  # leaves its run file behind
    assert (data / runfile.RUN_FILE).exists()
    config = embedded_config(tmp_path / "g.toml", data)
    rows = tmp_path / "in.csv"
    rows.write_text("t,v\n1700000000000000000,1.5\n")
    res = gateway("import", str(rows), "--key", "meters/1/1", "--config", str(config))
    assert res.returncode == 0, res.stderr
    assert "through the TStorage" not in res.stderr  # it opened the directory itself
    res = gateway("export", "--key", "meters/1/1", "--config", str(config))
    assert res.stdout == "t,v\n1700000000000000000,1.5\n"


def test_a_busy_data_directory_without_run_file_is_refused_with_the_ways_out(
    tmp_path: Path, tstorage: ServerProcess
) -> None:
    data = tmp_path / "data"
    server = spawn(["tstorage-server", "--data-dir", str(data), "--port", "0"])
    try:
        (data / runfile.RUN_FILE).unlink()  # e.g. a server of an older version
        config = embedded_config(tmp_path / "g.toml", data)
        res = gateway("export", "--key", "meters/1/1", "--config", str(config))
        assert res.returncode == 2 and "used by another server" in res.stderr
        assert "--tstorage HOST:PORT" in res.stderr and "Traceback" not in res.stderr
        res = gateway(
            "export",
            "--key",
            "meters/1/1",
            "--tstorage",
            f"127.0.0.1:{server.port}",
            "--config",
            str(config),
        )
        assert res.returncode == 0 and res.stdout == "t,v\n", res.stderr
    finally:
        server.stop()


def test_tstorage_option_names_any_running_tstorage(
    tmp_path: Path, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    cid = fresh_cid()
    # a config naming another (unreachable) TStorage: --tstorage wins
    config = write_config(tmp_path / "g.toml", tstorage, cid, fresh_cid())
    config.write_text(config.read_text().replace(f"port = {tstorage.port}", "port = 9"))
    rows = tmp_path / "in.csv"
    rows.write_text("t,v\n1700000000000000000,1.5\n")
    where = f"127.0.0.1:{tstorage.port}"
    res = gateway(
        "import", str(rows), "--key", "meters/1/1", "--tstorage", where, "--config", str(config)
    )
    assert res.returncode == 0, res.stderr
    assert len(records_of(tstorage, cid)) == 1
    res = gateway("export", "--key", "meters/1/1", "--tstorage", where, "--config", str(config))
    assert res.returncode == 0 and res.stdout == "t,v\n1700000000000000000,1.5\n"
    for bad in ("localhost", "127.0.0.1:port", "127.0.0.1:70000"):
        res = gateway("export", "--key", "meters/1/1", "--tstorage", bad, "--config", str(config))
        assert res.returncode == 2 and "--tstorage" in res.stderr and "HOST:PORT" in res.stderr


def test_a_tls_server_in_the_data_directory_is_named_not_guessed(tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path / "pki")
    data = tmp_path / "data"
    argv = ["tstorage-server", "--data-dir", str(data), "--port", "0"]
    with spawn([*argv, "--tls-cert", str(tls.server_cert), "--tls-key", str(tls.server_key)]):
        info = runfile.read(data)
        assert info is not None and info.tls
        config = embedded_config(tmp_path / "g.toml", data)
        res = gateway("export", "--key", "meters/1/1", "--config", str(config))
        assert res.returncode == 2 and f"speaks TLS at {info.address}" in res.stderr
        assert "[tstorage.tls]" in res.stderr and "Traceback" not in res.stderr

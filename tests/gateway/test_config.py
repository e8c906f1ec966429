"""The configuration file: valid examples load, every problem is reported with its place."""

from __future__ import annotations

import ssl
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gateway.codecs import parse_codec
from gateway.config import check_config, load_config
from gateway.elements import ElementShape
from gateway.errors import ConfigError
from gateway.keymap import DICT_PREFIX, LIST_PREFIX, DictTarget, ListTarget, SeriesKey
from tests._tls import make_tls_files

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = """
[tstorage.embedded]
data_dir = "data"

[[map]]
pattern = "meters/{mid:int}/{moid:int}"
cid = 1
mid = "{mid}"
moid = "{moid}"
codec = "struct:<d"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(textwrap.dedent(text))
    return path


def issues_of(path: Path) -> dict[str, tuple[str, str, int | None]]:
    cfg, issues = check_config(path)
    assert cfg is None
    return {i.location: (i.message, i.hint, i.line) for i in issues if i.severity == "error"}


def test_minimal_file_loads_with_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL))
    assert (cfg.server.host, cfg.server.port) == ("127.0.0.1", 5000)
    assert cfg.tstorage.embedded is not None
    # relative data directories are resolved against the file's folder
    assert cfg.tstorage.embedded.data_dir == (tmp_path / "data").resolve()
    target = cfg.keymap().resolve(LIST_PREFIX + "meters/4/2")
    assert isinstance(target, ListTarget) and target.series == SeriesKey(1, 4, 2)


def test_a_key_resolves_to_its_rule_with_the_settings_its_views_need(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            MINIMAL
            + """
            [[map]]
            kind = "dict"
            pattern = "site/{mid:int}"
            cid = 2
            mid = "{mid}"
            fields = { a = 3, b = 5 }
            element = "timestamped"
            time = "unix_s"
            read_only = true
            unit = "V"
            label = "voltage"
            """,
        )
    )
    keymap = cfg.keymap()
    series = keymap.resolve(LIST_PREFIX + "meters/4/2")
    assert isinstance(series, ListTarget)
    assert series.rule.shape == ElementShape(parse_codec("struct:<d"), "value", "unix_ns")
    assert not series.rule.read_only and not series.rule.allow_corrections
    meter = keymap.resolve(DICT_PREFIX + "site/7")
    assert isinstance(meter, DictTarget)
    assert meter.rule.shape == ElementShape(parse_codec("json"), "timestamped", "unix_s")
    assert (meter.rule.read_only, meter.rule.unit, meter.rule.label) == (True, "V", "voltage")


def test_shipped_examples_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    load_config(ROOT / "config" / "gateway.toml")
    monkeypatch.setenv("GATEWAY_TOKEN_DASHBOARD", "x")
    monkeypatch.setenv("GATEWAY_TOKEN_COLLECTOR", "y")
    cfg = load_config(ROOT / "config" / "gateway.rich.toml")
    assert cfg.auth.enabled and cfg.tstorage.port == 2025
    assert [r.kind for r in cfg.map] == ["list", "list", "dict", "list"]


def test_every_error_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [server]
        port = 70000
        colour = "blue"

        [tstorage]
        host = "127.0.0.1"

        [[map]]
        pattern = "meters/{mid:int}/{moid:int}"
        cid = 1
        mid = "{mid}"
        moid = "{moid}"
        codec = "struct:d"

        [[map]]
        pattern = "m/{mid:int}/{x:int}"
        cid = 2
        mid = "{mid}"
        moid = 3
        """,
    )
    found = issues_of(path)
    assert set(found) == {"server.port", "server.colour", "tstorage", "map[0].codec", "map[1]"}
    assert found["server.port"][2] == 3
    assert found["server.colour"][2] == 4
    assert found["map[0].codec"][2] == 14 and "byte order" in found["map[0].codec"][0]
    assert "feed neither mid nor moid" in found["map[1]"][0]
    assert all(hint for _, hint, _ in found.values())  # every error carries a hint


def test_auth_may_be_off_only_on_loopback(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nhost = "0.0.0.0"\n' + MINIMAL)
    found = issues_of(path)
    assert "auth.enabled" in found and "not a loopback" in found["auth.enabled"][0]
    ok = write(tmp_path, '[server]\nhost = "::1"\n' + MINIMAL)
    load_config(ok)


def test_tokens_name_environment_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = MINIMAL + '\n[auth]\nenabled = true\n[[auth.tokens]]\nname = "ui"\naccess = "read"\n'
    found = issues_of(write(tmp_path, base + 'env = "hunter2 secret"\n'))
    assert "not hold the secret" in found["auth.tokens[0]"][0]
    assert "hunter" not in repr(found)  # a secret written by mistake is not echoed
    found = issues_of(write(tmp_path, base + 'env = "T"\ntoken = "abc"\n'))
    assert "auth.tokens[0].token" in found
    # an unset variable is a warning for check-config and an error for the gateway
    path = write(tmp_path, base + 'env = "GW_TEST_TOKEN_UNSET"\n')
    monkeypatch.delenv("GW_TEST_TOKEN_UNSET", raising=False)
    cfg, issues = check_config(path)
    assert cfg is not None and [i.severity for i in issues] == ["warning"]
    with pytest.raises(ConfigError, match="GW_TEST_TOKEN_UNSET"):
        load_config(path)
    monkeypatch.setenv("GW_TEST_TOKEN_UNSET", "s")
    assert load_config(path).auth.tokens[0].secret() == "s"


def test_overlapping_rules_and_reserved_cid(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MINIMAL
        + """
        [[map]]
        pattern = "m/{mid:int}"
        cid = 1
        mid = "{mid}"
        moid = 0

        [[map]]
        pattern = "reserved"
        cid = 2147483000
        mid = 0
        moid = 0
        """,
    )
    found = issues_of(path)
    assert "same series as map[0]" in found["map[1]"][0]
    assert "reserved" in found["map[2].cid"][0]


@pytest.mark.parametrize(
    ("rule", "needle"),
    [
        ('kind = "dict"\npattern = "d/{mid:int}"\nmid = "{mid}"\nmoid = 1', "takes no moid"),
        ('pattern = "l/{mid:int}"\nmid = "{mid}"', "needs moid"),
        ('pattern = "l/{mid:int}"\nmid = "{mod}"\nmoid = 1', "placeholder of the pattern"),
        (
            'pattern = "l/{mid:int}"\nmid = "{mid}"\nmoid = 1\nfields = {a = 1}',
            "only apply to dict",
        ),
        (
            'kind = "dict"\npattern = "d/{mid:int}"\nmid = "{mid}"\nfields = {a = 1, b = 1}',
            "more than one name",
        ),
        ('pattern = "l/{mid:str}"\nmid = "{mid}"\nmoid = 1', "type"),
        ('pattern = "l"\nmid = 0\nmoid = 2147483647', "outside"),
    ],
)
def test_rule_errors(tmp_path: Path, rule: str, needle: str) -> None:
    text = '[tstorage]\nhost = "127.0.0.1"\nport = 1\n[[map]]\ncid = 5\n' + rule + "\n"
    found = issues_of(write(tmp_path, text))
    assert any(needle in msg for msg, _, _ in found.values()), found


def test_toml_syntax_error_has_a_line(tmp_path: Path) -> None:
    found = issues_of(write(tmp_path, "[server]\nport = = 3\n"))
    assert found["(syntax)"][2] == 2


def test_check_config_command(tmp_path: Path) -> None:
    gateway = [sys.executable, "-m", "gateway", "check-config"]
    ok = subprocess.run([*gateway, str(write(tmp_path, MINIMAL))], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "OK (1 map rule(s)" in ok.stdout
    bad = write(tmp_path, '[server]\nport = "x"\nhost = 3\n')
    res = subprocess.run([*gateway, str(bad)], capture_output=True, text=True)
    assert res.returncode != 0
    assert f"{bad}:2: error: server.port" in res.stderr
    assert f"{bad}:3: error: server.host" in res.stderr
    assert "tstorage" in res.stderr and "hint:" in res.stderr
    missing = subprocess.run(
        [*gateway, str(tmp_path / "nope.toml")], capture_output=True, text=True
    )
    assert missing.returncode != 0 and "cannot read" in missing.stderr
    # --config as the other commands take it; the default as `run` takes it
    flag = subprocess.run([*gateway, "--config", str(bad)], capture_output=True, text=True)
    assert flag.returncode == 1 and f"{bad}:2: error: server.port" in flag.stderr
    both = subprocess.run([*gateway, str(bad), "--config", str(tmp_path / "other.toml")],
                          capture_output=True, text=True)  # fmt: skip
    assert both.returncode == 2 and "give the file once" in both.stderr
    here = subprocess.run(gateway, capture_output=True, text=True, cwd=ROOT)
    assert here.returncode == 0 and "config/gateway.toml: OK" in here.stdout
    elsewhere = subprocess.run(gateway, capture_output=True, text=True, cwd=tmp_path)
    assert elsewhere.returncode == 2 and "no --config given" in elsewhere.stderr


def test_tstorage_tuning_defaults_and_bounds(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL))
    t = cfg.tstorage
    assert (t.max_staleness, t.index_budget, t.index_budget_bytes, t.value_cache) == (
        0.1,
        None,  # the byte budget alone bounds the indexes
        128 * 1024 * 1024,
        200_000,
    )
    bad = MINIMAL.replace(
        "[tstorage.embedded]",
        "[tstorage]\nmax_staleness = -1\nindex_budget = 5\n[tstorage.embedded]",
    )
    found = issues_of(write(tmp_path, bad))
    assert {"tstorage.max_staleness", "tstorage.index_budget"} <= set(found)


REMOTE = MINIMAL.replace(
    '[tstorage.embedded]\ndata_dir = "data"', '[tstorage]\nhost = "127.0.0.1"\nport = 2025'
)


def test_tls_to_a_remote_tstorage(tmp_path: Path) -> None:
    pki = make_tls_files(tmp_path / "pki")
    text = REMOTE + textwrap.dedent(
        """
        [tstorage.tls]
        ca_file = "pki/ca.pem"
        cert_file = "pki/client.pem"
        key_file = "pki/client.key"
        """
    )
    cfg = load_config(write(tmp_path, text))
    tls = cfg.tstorage.tls
    assert tls is not None and tls.ca_file == pki.ca.resolve()  # relative to the file
    ctx = tls.context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname


@pytest.mark.parametrize(
    "table, location, needle",
    [
        ('cert_file = "c.pem"', "tstorage.tls", "cert_file and key_file go together"),
        ('ca_file = "missing.pem"', "tstorage.tls", "missing.pem"),
    ],
)
def test_tls_errors(tmp_path: Path, table: str, location: str, needle: str) -> None:
    found = issues_of(write(tmp_path, REMOTE + f"\n[tstorage.tls]\n{table}\n"))
    assert needle in found[location][0]
    assert found[location][2] is not None  # located in the file


def test_tls_is_refused_for_the_embedded_server(tmp_path: Path) -> None:
    found = issues_of(write(tmp_path, MINIMAL + '\n[tstorage.tls]\nca_file = "ca.pem"\n'))
    assert "remote TStorage" in found["tstorage"][0]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.7", "gateway.example.org"])
def test_an_embedded_tstorage_off_loopback_is_refused(tmp_path: Path, host: str) -> None:
    # the TStorage protocol has no authentication, and the embedded server has no TLS
    text = MINIMAL.replace('data_dir = "data"', f'data_dir = "data"\nhost = "{host}"')
    message, hint, line = issues_of(write(tmp_path, text))["tstorage.embedded.host"]
    assert "off loopback" in message and "no authentication" in message
    assert "--tls-client-ca" in hint and "cert_file" in hint
    assert line == 4
    gateway = [sys.executable, "-m", "gateway", "check-config", str(tmp_path / "gateway.toml")]
    res = subprocess.run(gateway, capture_output=True, text=True)
    assert res.returncode == 1 and "tstorage.embedded.host" in res.stderr


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_an_embedded_tstorage_on_loopback_is_accepted(tmp_path: Path, host: str) -> None:
    text = MINIMAL.replace('data_dir = "data"', f'data_dir = "data"\nhost = "{host}"')
    embedded = load_config(write(tmp_path, text)).tstorage.embedded
    assert embedded is not None and embedded.host == host
    assert (embedded.restart_delay, embedded.restart_max_delay) == (0.2, 10.0)


def test_the_removed_thread_mode_is_refused_with_what_to_write(tmp_path: Path) -> None:
    text = MINIMAL.replace('data_dir = "data"', 'data_dir = "data"\nmode = "thread"')
    message, hint, line = issues_of(write(tmp_path, text))["tstorage.embedded.mode"]
    assert 'mode = "thread"' in message and "was removed" in message
    assert "child process" in message and 'mode = "process"' in hint
    assert line == 4
    for command in (["check-config"], ["run", "--port", "0", "--config"]):
        gateway = [sys.executable, "-m", "gateway", *command, str(tmp_path / "gateway.toml")]
        res = subprocess.run(gateway, capture_output=True, text=True, timeout=60)
        assert res.returncode != 0 and "tstorage.embedded.mode" in res.stderr, res.stderr
        assert "was removed" in res.stderr and 'mode = "process"' in res.stderr
    assert not (tmp_path / "data").exists()  # nothing was started
    # a file that names the one mode left still loads
    text = MINIMAL.replace('data_dir = "data"', 'data_dir = "data"\nmode = "process"')
    embedded = load_config(write(tmp_path, text)).tstorage.embedded
    assert embedded is not None and embedded.mode == "process"


def test_embedded_durability_setting(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.tstorage.embedded is not None
    assert (cfg.tstorage.embedded.sync, cfg.tstorage.embedded.sync_interval) == ("commit", 1.0)
    text = MINIMAL.replace(
        'data_dir = "data"', 'data_dir = "data"\nsync = "interval"\nsync_interval = 0.2'
    )
    emb = load_config(write(tmp_path, text)).tstorage.embedded
    assert emb is not None and (emb.sync, emb.sync_interval) == ("interval", 0.2)
    bad = MINIMAL.replace(
        'data_dir = "data"', 'data_dir = "data"\nsync = "never"\nsync_interval = 5'
    )
    found = issues_of(write(tmp_path, bad))
    assert "commit" in found["tstorage.embedded.sync"][0]
    assert found["tstorage.embedded.sync_interval"][2] is not None  # located in the file


@pytest.mark.parametrize(
    "section, line, location, needle",
    [
        ("[server]", 'port = "5000"', "server.port", "whole number"),
        ("[server]", "port = 5000.0", "server.port", "whole number"),
        ("[generic]", 'cid = "1"', "generic.cid", "whole number"),
        ("[auth]", 'enabled = "yes"', "auth.enabled", "true or false"),
    ],
)
def test_values_of_the_wrong_type_are_errors(
    tmp_path: Path, section: str, line: str, location: str, needle: str
) -> None:
    # A TOML file is typed: a quoted number or a float port is a mistake, not coerced.
    path = write(tmp_path, MINIMAL + f"\n{section}\n{line}\n")
    issues = issues_of(path)
    assert list(issues) == [location]
    _message, hint, lineno = issues[location]
    assert needle in hint
    assert lineno is not None and path.read_text().splitlines()[lineno - 1] == line
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "check-config", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 1 and f":{lineno}: error: {location}:" in out.stdout + out.stderr


def test_floats_take_whole_numbers_and_paths_take_strings(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL + "\n[server]\nfollow_interval = 1\n"))
    assert cfg.server.follow_interval == 1.0
    assert cfg.tstorage.embedded is not None and cfg.tstorage.embedded.data_dir.name == "data"

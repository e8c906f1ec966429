"""Reading a configuration file: every problem of it, or the typed configuration."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gateway.config.checks import cross_check
from gateway.config.report import _HINTS, TomlLocator, _pydantic_issues
from gateway.config.schema import (
    AuthConfig,
    GatewayConfig,
    GenericConfig,
    MapRule,
    ServerConfig,
    TStorageConfig,
    _Section,
)
from gateway.errors import ConfigError, ConfigIssue

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def load_config(path: str | os.PathLike[str], *, strict: bool = True) -> GatewayConfig:
    """Read, validate and return the configuration in ``path``.

    Relative ``tstorage.embedded.data_dir`` and ``tstorage.journal.dir`` values are
    resolved against the file's folder.

    Args:
        path: the TOML file.
        strict: when true (the default), warnings are reported as errors too.

    Raises:
        ConfigError: the file is unreadable or invalid; ``issues`` lists every problem.
    """
    cfg, issues = check_config(path)
    fatal = [i for i in issues if strict or i.severity == "error"]
    if cfg is None or fatal:
        raise ConfigError(str(path), issues)
    return cfg


def check_config(path: str | os.PathLike[str]) -> tuple[GatewayConfig | None, list[ConfigIssue]]:
    """Validate ``path`` and return the config (``None`` on errors) and every issue found."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        return None, [
            ConfigIssue(
                "(file)", f"cannot read: {exc.strerror or exc}", "check the path given to --config"
            )
        ]
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        return None, [
            ConfigIssue(
                "(syntax)",
                f"not valid TOML: {exc}",
                "fix the TOML syntax first",
                int(m.group(1)) if m else None,
            )
        ]
    locator = TomlLocator(text)
    issues = _validate_by_section(data, locator)
    cfg: GatewayConfig | None = None
    if not any(i.severity == "error" for i in issues):
        try:
            cfg = GatewayConfig.model_validate(data, context={"issues": []})
        except ValidationError as exc:  # pragma: no cover - sections already validated
            issues.extend(_pydantic_issues(exc, locator))
    for n, issue in enumerate(issues):
        if issue.line is None:
            issues[n] = ConfigIssue(
                issue.location,
                issue.message,
                issue.hint,
                locator.line_of(issue.location),
                issue.severity,
            )
    if cfg is not None:  # folders named relative to the file's folder
        t = cfg.tstorage
        update: dict[str, Any] = {}
        if t.embedded is not None:
            update["embedded"] = t.embedded.model_copy(
                update={"data_dir": _under(file.parent, t.embedded.data_dir)}
            )
        if t.journal is not None:
            update["journal"] = t.journal.model_copy(
                update={"dir": _under(file.parent, t.journal.dir)}
            )
        cfg = cfg.model_copy(update={"tstorage": t.model_copy(update=update)})
        journal, emb = cfg.tstorage.journal, cfg.tstorage.embedded
        if (
            journal is not None
            and emb is not None
            and journal.dir.resolve() == emb.data_dir.resolve()
        ):
            issues.append(
                ConfigIssue(
                    "tstorage.journal.dir",
                    f"{journal.dir} is the embedded TStorage's data_dir",
                    'give the journal a folder of its own, e.g. dir = "data/journal"',
                    locator.line_of("tstorage.journal.dir"),
                )
            )
    if cfg is not None and cfg.tstorage.tls is not None:
        tls = cfg.tstorage.tls.resolved(file.parent)
        cfg = cfg.model_copy(update={"tstorage": cfg.tstorage.model_copy(update={"tls": tls})})
        try:
            tls.context()
        except ValueError as exc:
            issues.append(
                ConfigIssue(
                    "tstorage.tls",
                    str(exc),
                    "give PEM files readable by the gateway (paths relative to this file)",
                    locator.line_of("tstorage.tls"),
                )
            )
    if any(i.severity == "error" for i in issues):
        cfg = None
    return cfg, issues


_SECTIONS: dict[str, type[_Section]] = {
    "server": ServerConfig,
    "tstorage": TStorageConfig,
    "auth": AuthConfig,
    "generic": GenericConfig,
}


def _validate_by_section(data: dict[str, Any], locator: TomlLocator) -> list[ConfigIssue]:
    # Each section and each rule is validated on its own so that one bad part does not
    # hide the problems of the others; cross-section checks then run on the valid parts.
    issues: list[ConfigIssue] = []
    for key in data:
        if key not in (*_SECTIONS, "map"):
            issues.append(
                ConfigIssue(
                    key, "unknown section or key", _HINTS["extra_forbidden"], locator.line_of(key)
                )
            )
    valid: dict[str, Any] = {}
    for name, model in _SECTIONS.items():
        if name not in data and name == "tstorage":
            issues.append(
                ConfigIssue(
                    "tstorage",
                    "the [tstorage] section is missing",
                    'add [tstorage.embedded] with data_dir = "data", or host and port',
                )
            )
            continue
        try:
            valid[name] = model.model_validate(data.get(name, {}))
        except ValidationError as exc:
            issues.extend(_pydantic_issues(exc, locator, (name,)))
    rules: dict[int, MapRule] = {}
    raw_rules = data.get("map", [])
    if not isinstance(raw_rules, list):
        issues.append(
            ConfigIssue(
                "map",
                "map must be an array of tables",
                "write each rule as a [[map]] table",
                locator.line_of("map"),
            )
        )
        raw_rules = []
    for i, raw in enumerate(raw_rules):
        try:
            rules[i] = MapRule.model_validate(raw)
        except ValidationError as exc:
            issues.extend(_pydantic_issues(exc, locator, ("map", i)))
    issues.extend(cross_check(valid.get("server"), valid.get("auth"), valid.get("generic"), rules))
    return issues


def _under(base: Path, path: Path) -> Path:
    """``path``, taken from ``base`` when relative."""
    return path if path.is_absolute() else (base / path).resolve()

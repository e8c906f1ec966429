"""Command line of the gateway: ``gateway <command>``.

Commands:
    check-config FILE    validate a configuration file, report every problem, exit 1 if invalid
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gateway.config import check_config


def _check_config(args: argparse.Namespace) -> int:
    cfg, issues = check_config(args.file)
    for issue in issues:
        print(issue.format(args.file), file=sys.stderr)
    errors = sum(1 for i in issues if i.severity == "error")
    if cfg is None or errors:
        print(f"{args.file}: invalid ({errors} error(s))", file=sys.stderr)
        return 1
    print(
        f"{args.file}: OK ({len(cfg.map)} map rule(s), TStorage "
        + ("embedded" if cfg.tstorage.embedded else f"{cfg.tstorage.host}:{cfg.tstorage.port}")
        + f", auth {'on' if cfg.auth.enabled else 'off'})"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``gateway`` console script."""
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="A znsocket server whose storage is TStorage, configured by one TOML file.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file", help="the TOML configuration file")
    check.set_defaults(func=_check_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gateway`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

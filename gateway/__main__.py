"""Command line of the gateway: ``gateway <command>``.

Commands:
    run [--config FILE] [--host H] [--port N]   serve (default config: config/gateway.toml)
    check-config FILE    validate a configuration file, report every problem, exit 1 if invalid
    import FILE.csv --key KEY [--config FILE]   bulk-append CSV rows (t, v) to a mapped List
    export --key KEY [--config FILE] [-o FILE.csv]   write a mapped List as CSV
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

# Nothing heavy is imported here: `gateway run` must monkey-patch (eventlet) before any
# module that opens sockets or creates locks is loaded.
DEFAULT_CONFIG = "config/gateway.toml"


def _check_config(args: argparse.Namespace) -> int:
    from gateway.config import check_config

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


def _run(args: argparse.Namespace) -> int:
    from gateway.config import load_config
    from gateway.errors import ConfigError

    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        print("the gateway refuses to start on an invalid configuration", file=sys.stderr)
        return 2
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if overrides:
        cfg = cfg.model_copy(update={"server": cfg.server.model_copy(update=overrides)})
        if not cfg.auth.enabled and not cfg.server.is_loopback:
            print("auth is off: the gateway may only bind a loopback address", file=sys.stderr)
            return 2
    from gateway.app import run
    from gateway.errors import GatewayError

    try:
        run(cfg)
    except (GatewayError, OSError) as exc:
        # e.g. TStorage unreachable at start, the port taken
        print(f"gateway: cannot start: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # e.g. the embedded data directory used by another server
        logging.getLogger("gateway").debug("start failed", exc_info=True)
        print(f"gateway: cannot start: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


def _open_storage(config: str) -> tuple[Any, Any]:
    """The gateway's storage on TStorage (starting the embedded server if configured)."""
    from gateway.app import EmbeddedTStorage
    from gateway.config import load_config
    from gateway.storage import GatewayStorage, LinkSettings, TStorageLink

    cfg = load_config(config)
    t = cfg.tstorage
    embedded = EmbeddedTStorage(t.embedded).start() if t.embedded is not None else None
    host, port = (embedded.host, embedded.port) if embedded else (t.host, t.port)
    assert host is not None and port is not None
    link = TStorageLink(
        LinkSettings(host, port, t.timeout, t.memory_limit, t.connections, t.reconnect_max_delay)
    )
    return GatewayStorage(link, cfg), embedded


def _transfer(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gateway import transfer
    from gateway.errors import GatewayError

    try:
        storage, embedded = _open_storage(args.config)
    except GatewayError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        if args.command == "import":
            n = transfer.import_csv(storage, args.key, Path(args.file))
            print(f"imported {n} row(s) into {args.key}", file=sys.stderr)
        elif args.output:
            with open(args.output, "w", newline="", encoding="utf-8") as out:
                n = transfer.export_csv(storage, args.key, out)
            print(f"exported {n} row(s) of {args.key} to {args.output}", file=sys.stderr)
        else:
            transfer.export_csv(storage, args.key, sys.stdout, progress=False)
    except (GatewayError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        storage.link.close()
        if embedded is not None:
            embedded.stop()
    return 0


def _green() -> None:
    # Green sockets and locks before anything creates one: the storage's blocking TStorage
    # calls then yield to other websocket clients instead of stalling the server.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # eventlet announces its maintenance mode
        import eventlet

    eventlet.monkey_patch()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``gateway`` console script."""
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="A znsocket server whose storage is TStorage, configured by one TOML file.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="serve znsocket clients from TStorage")
    run.add_argument("--config", default=DEFAULT_CONFIG, help="TOML file (default: %(default)s)")
    run.add_argument("--host", default=None, help="override server.host")
    run.add_argument(
        "--port", type=int, default=None, help="override server.port (0: any free port)"
    )
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    run.set_defaults(func=_run)
    imp = sub.add_parser("import", help="bulk-append a CSV file (columns t, v) to a mapped List")
    imp.add_argument("file", help="CSV with a header: v (JSON or text) and optional t")
    imp.add_argument("--key", required=True, help="the List key, e.g. meters/7/3")
    imp.add_argument("--config", default=DEFAULT_CONFIG, help="TOML file (default: %(default)s)")
    imp.set_defaults(func=_transfer)
    exp = sub.add_parser("export", help="write a mapped List as CSV (t, v)")
    exp.add_argument("--key", required=True, help="the List key, e.g. meters/7/3")
    exp.add_argument("--config", default=DEFAULT_CONFIG, help="TOML file (default: %(default)s)")
    exp.add_argument("-o", "--output", help="CSV file to write (default: standard output)")
    exp.set_defaults(func=_transfer)
    check = sub.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file", help="the TOML configuration file")
    check.set_defaults(func=_check_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gateway`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "run":
        _green()
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

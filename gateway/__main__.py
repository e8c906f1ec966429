"""Command line of the gateway: ``gateway <command>``.

Commands (``gateway --version`` prints the installed version):
    run [--config FILE] [--host H] [--port N]   serve (default config: config/gateway.toml)
    check-config [FILE]  validate a configuration file (FILE or --config, default as run),
                         report every problem, exit 1 if invalid
    import FILE [--key KEY] [--format csv|jsonl] [--replace] [--existing error|skip|correct]
                [--quiet] [--tstorage HOST:PORT] [--config FILE]
                         CSV rows into a mapped List/Dict, or JSON Lines as generic keys
    export [--key KEY] [--format csv|jsonl] [--time unit|iso] [-o FILE] [--quiet]
           [--tstorage HOST:PORT] [--config FILE]
                         a mapped List/Dict as CSV, or generic keys (glob) as JSON Lines
    index build [--key GLOB] [--quiet] [--config FILE]
                         build and persist the chunk summaries of mapped series ahead of time
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

# Nothing heavy is imported here: `gateway run` must monkey-patch (eventlet) before any
# module that opens sockets or creates locks is loaded.
DEFAULT_CONFIG = "config/gateway.toml"
CONFIG_HELP = f"TOML file (default: {DEFAULT_CONFIG} in the current folder)"
DISTRIBUTION = "tstorage-gateway"
EXISTING = ("error", "skip", "correct")  # gateway.transfer.EXISTING, without importing it


def _config_path(args: argparse.Namespace) -> str | None:
    """The configuration file to read, or ``None`` after saying why there is none.

    Without ``--config`` the default is taken relative to the current folder, which holds
    it in a checkout of the repository; elsewhere (an installed package) a user must be
    told that it was the default that was missing, and how to give a file.
    """
    if args.config is not None:
        return str(args.config)
    if os.path.isfile(DEFAULT_CONFIG):
        return DEFAULT_CONFIG
    print(
        f"gateway {args.command}: no --config given, and the default {DEFAULT_CONFIG} is "
        f"not in the current folder ({os.getcwd()}); give the configuration file: "
        f"gateway {args.command} --config FILE (config/README.md in the source repository "
        "documents every field, and config/gateway.toml there is an example)",
        file=sys.stderr,
    )
    return None


def _version() -> str:
    """The installed package's version ("unknown" for a source tree never installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown (not installed)"


class _VersionAction(argparse.Action):
    """``--version``: looks the version up only when asked (nothing heavy before eventlet)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        print(f"gateway ({DISTRIBUTION}) {_version()}")
        parser.exit()


def _check_config(args: argparse.Namespace) -> int:
    from gateway.config import check_config

    if args.file is not None and args.config is not None and args.file != args.config:
        print("gateway check-config: give the file once (FILE or --config)", file=sys.stderr)
        return 2
    if args.file is not None:
        args.config = args.file
    path = _config_path(args)
    if path is None:
        return 2
    cfg, issues = check_config(path)
    for issue in issues:
        print(issue.format(path), file=sys.stderr)
    errors = sum(1 for i in issues if i.severity == "error")
    if cfg is None or errors:
        print(f"{path}: invalid ({errors} error(s))", file=sys.stderr)
        return 1
    print(
        f"{path}: OK ({len(cfg.map)} map rule(s), TStorage "
        + ("embedded" if cfg.tstorage.embedded else f"{cfg.tstorage.host}:{cfg.tstorage.port}")
        + f", auth {'on' if cfg.auth.enabled else 'off'})"
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    from gateway.config import load_config
    from gateway.errors import ConfigError

    config = _config_path(args)
    if config is None:
        return 2
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    try:
        cfg = load_config(config)
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
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            where = f"{cfg.server.host}:{cfg.server.port}"
            print(f"gateway: cannot start: {where} is in use by another server (give "
                  "another --port, or stop that one)", file=sys.stderr)  # fmt: skip
        else:  # e.g. TStorage unreachable at start
            print(f"gateway: cannot start: {exc}", file=sys.stderr)
        return 1
    except GatewayError as exc:
        print(f"gateway: cannot start: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # e.g. the embedded data directory used by another server
        logging.getLogger("gateway").debug("start failed", exc_info=True)
        print(f"gateway: cannot start: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


def _tstorage_address(text: str) -> tuple[str, int]:
    """``--tstorage HOST:PORT`` (``[::1]:PORT`` for IPv6) as a (host, port) pair.

    Raises:
        ValueError: not of that form, or the port outside 1-65535.
    """
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"--tstorage takes HOST:PORT (e.g. 127.0.0.1:2025), got {text!r}")
    return host, int(port)


def _open_storage(config: str, tstorage: str | None = None) -> tuple[Any, Any, str | None]:
    """The gateway's storage on TStorage, the embedded server started for it (or None),
    and a note on where it was found (None when the config says where).

    With ``tstorage`` (HOST:PORT) that server is used whatever the config names. An
    embedded data directory that a running server holds (a gateway's) is reached through
    the address in its run file; without one it raises ``DataDirInUse``.
    """
    from gateway.config import load_config
    from gateway.embedded import EmbeddedTStorage
    from gateway.storage import GatewayStorage, LinkSettings, TStorageLink
    from tstorage_server import runfile
    from tstorage_server.store import DataDirInUse

    cfg = load_config(config)
    t = cfg.tstorage
    if t.journal is not None:
        from gateway.errors import GatewayError
        from gateway.storage.journal import Journal

        left = Journal.unstored(t.journal.dir)
        if left:
            raise GatewayError(
                f"the journal in {t.journal.dir} holds {left} acknowledged record(s) that a "
                "stopped gateway has not stored in TStorage yet: start the gateway once (it "
                "stores them first), then run this command again"
            )
    embedded = None
    note = None
    host: str | None
    port: int | None
    if tstorage is not None:
        host, port = _tstorage_address(tstorage)
        t = t.model_copy(update={"embedded": None})
    elif t.embedded is not None:
        data_dir = t.embedded.data_dir
        running = runfile.read(data_dir)  # a live server's address: no doomed start needed
        if running is None:
            try:
                # a gateway serving this data directory will not let go of it: say so at once
                embedded = EmbeddedTStorage(t.embedded).start(busy_wait_s=0)
            except DataDirInUse as exc:
                running = runfile.read(data_dir)  # it may have started meanwhile
                if running is None:
                    where = data_dir / runfile.RUN_FILE
                    raise DataDirInUse(f"{exc}, and no run file ({where}) says where") from None
        if embedded is not None:
            host, port = embedded.host, embedded.port
        else:
            assert running is not None
            if running.tls:
                raise DataDirInUse(
                    f"data directory {data_dir} is used by a server that speaks TLS at "
                    f"{running.address}: give a config with its host, port and [tstorage.tls]"
                )
            host, port = running.host, running.port
            note = (
                f"through the TStorage serving {data_dir} at {running.address} "
                f"(process {running.pid}, e.g. a running gateway's)"
            )
    else:
        host, port = t.host, t.port
    assert host is not None and port is not None
    link = TStorageLink(LinkSettings.for_config(t, host, port))
    storage = GatewayStorage(link, cfg)
    storage.series.build_wait = None  # a command waits for the summaries it needs
    return storage, embedded, note


def _close_storage(storage: Any, embedded: Any) -> None:
    """Close what :func:`_open_storage` opened: the link first, then the embedded server
    it talks to (or nothing, when the config named a server)."""
    storage.link.close()
    if embedded is not None:
        embedded.stop()


def _transfer(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gateway import transfer
    from gateway.errors import GatewayError
    from gateway.transfer.common import replaced_atomically
    from tstorage_server.store import DataDirInUse
    from znsocket.exceptions import ZnSocketError

    verb = args.command
    progress = not args.quiet
    path = Path(args.file) if verb == "import" else None
    try:  # a missing file or unknown format is told before TStorage is opened
        if path is not None and not path.is_file():
            raise transfer.TransferError("no such file", path)
        fmt = transfer.choose_format(args.format, path) if path is not None else None
    except transfer.TransferError as exc:
        print(exc, file=sys.stderr)
        return 1
    config = _config_path(args)
    if config is None:
        return 2
    try:
        storage, embedded, note = _open_storage(config, args.tstorage)
    except GatewayError as exc:
        print(exc, file=sys.stderr)
        return 2
    except DataDirInUse as exc:
        print(
            f"gateway {verb}: {exc}: give its address with --tstorage HOST:PORT, or stop it",
            file=sys.stderr,
        )
        return 2
    except ValueError as exc:  # a malformed --tstorage
        print(f"gateway {verb}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. the embedded data directory cannot be created
        print(f"gateway {verb}: cannot open TStorage: {exc}", file=sys.stderr)
        return 2
    if note is not None and not args.quiet:
        print(f"gateway {verb}: {note}", file=sys.stderr)
    try:
        if path is not None and fmt is not None:
            summary = transfer.import_file(
                storage,
                path,
                fmt,
                key=args.key,
                replace=args.replace,
                progress=progress,
                existing=args.existing,
            )
            where = f"into {args.key}" if fmt == "csv" else f"from {path}"
        else:
            out_path = None if args.output in (None, "-") else Path(args.output)
            fmt = transfer.choose_format(args.format, out_path, args.key, storage)
            if out_path is None:
                summary = transfer.export_to(
                    storage, sys.stdout, fmt, key=args.key, progress=progress, time=args.time
                )
                where = "to standard output"
            else:
                with replaced_atomically(out_path) as out:
                    summary = transfer.export_to(
                        storage, out, fmt, key=args.key, progress=progress, time=args.time
                    )
                where = f"to {out_path}"
            if fmt == "csv":
                where = f"of {args.key} {where}"
            if summary.done == 0:  # a warning, not an error: an empty series is valid
                what = (
                    f"{args.key} has no records: the CSV holds only its header"
                    if fmt == "csv"
                    else "no generic key"
                    + (f" matches {args.key!r}" if args.key else " is stored")
                    + ": the file is empty"
                )
                print(f"gateway export: warning: {what}", file=sys.stderr)
        if not args.quiet:
            print(summary.text(f"{verb}ed", where), file=sys.stderr)
    except transfer.TransferError as exc:
        print(exc, file=sys.stderr)
        if exc.stored:
            print(
                f"{verb} stopped after storing {exc.stored} {exc.unit}"
                + ("" if exc.partial else "; nothing of the failing batch was written"),
                file=sys.stderr,
            )
        return 1
    except (GatewayError, ZnSocketError, ValueError, OSError) as exc:
        # e.g. TStorage unreachable, a bad placeholder in --key, an unwritable output
        print(f"gateway {verb}: {exc}", file=sys.stderr)
        return 1
    finally:
        _close_storage(storage, embedded)
    return 0


def _index(args: argparse.Namespace) -> int:
    from gateway.errors import GatewayError
    from gateway.storage.index_build import build_indexes
    from tstorage_server.store import DataDirInUse

    try:
        storage, embedded, note = _open_storage(args.config)
    except GatewayError as exc:
        print(exc, file=sys.stderr)
        return 2
    except (DataDirInUse, OSError) as exc:
        print(f"gateway index build: cannot open TStorage: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:  # the progress of long builds, and each build's rate
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        if note is not None:
            print(f"gateway index build: {note}", file=sys.stderr)
    try:
        summary = build_indexes(storage, args.key, progress=not args.quiet)
        if not args.quiet:
            print(summary.text(), file=sys.stderr)
    except (GatewayError, ValueError) as exc:
        print(f"gateway index build: {exc}", file=sys.stderr)
        return 1
    finally:
        _close_storage(storage, embedded)
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
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="serve znsocket clients from TStorage")
    run.add_argument("--config", help=CONFIG_HELP)
    run.add_argument("--host", default=None, help="override server.host")
    run.add_argument(
        "--port", type=int, default=None, help="override server.port (0: any free port)"
    )
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    run.set_defaults(func=_run)
    formats = (
        "Formats: CSV for mapped keys (a List: columns t,v; a Dict: field,t,v; t in the map "
        "rule's time unit or ISO-8601 (no zone = UTC), empty = now; v as JSON, plain text = "
        "a string) and JSON Lines for "
        'generic keys (one key a line: {"key": ..., "type": string|list|hash|set|zset, '
        '"value": ..., "expire_at": unix seconds}). The format is --format, else the file '
        "extension (.csv, .jsonl, .ndjson). See docs/gateway.md."
    )
    imp = sub.add_parser(
        "import",
        help="bulk-load a CSV file into a mapped List/Dict, or JSON Lines as generic keys",
        description="Bulk-load a file straight into TStorage (no gateway needs to run; beside "
        "a running gateway on an embedded TStorage it goes through that gateway's TStorage "
        "server, found by the run file in the data directory), in "
        "batches of 10,000 rows checked before any is written, with a progress bar on a "
        "terminal. A bad row stops the import with FILE:LINE: reason and exit status 1; "
        "earlier batches stay stored.",
        epilog=formats,
    )
    imp.add_argument("file", help="the CSV or JSON Lines file")
    imp.add_argument(
        "--key",
        help="CSV: the List or Dict key (e.g. meters/7/3 or meters/7); "
        "JSON Lines: restore only keys matching this glob (default: all)",
    )
    imp.add_argument("--format", choices=["csv", "jsonl"], help="override the file extension")
    imp.add_argument(
        "--replace",
        action="store_true",
        help="JSON Lines: overwrite generic keys that hold something else "
        "(default: refuse them; keys already holding the file's value are left alone)",
    )
    imp.add_argument(
        "--existing",
        choices=list(EXISTING),
        default="error",
        help="CSV: a row at a time its series already holds is an error (default; nothing "
        "of its batch is stored), is skipped (the stored record stays: re-run an import "
        "that stopped at a bad row once it is fixed), or is written as a correction "
        "(only for a map rule with allow_corrections = true)",
    )
    imp.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    imp.add_argument(
        "--tstorage",
        metavar="HOST:PORT",
        help="the running TStorage server to use, whatever the config names (default: the "
        "config's; an embedded data directory a running gateway serves is found through "
        "the run file its server writes there)",
    )
    imp.add_argument("--config", help=CONFIG_HELP)
    imp.set_defaults(func=_transfer)
    exp = sub.add_parser(
        "export",
        help="write a mapped List/Dict as CSV, or generic keys as JSON Lines",
        description="Write keys straight from TStorage (no gateway needs to run; beside a "
        "running gateway on an embedded TStorage it goes through that gateway's TStorage "
        "server), with a "
        "progress bar on a terminal. A List is every record oldest first; a Dict every "
        "record of every field; generic keys are written in name order.",
        epilog=formats,
    )
    exp.add_argument(
        "--key",
        help="CSV: the List or Dict key (e.g. meters/7/3 or meters/7); JSON Lines: a glob "
        "over generic key names as Redis SCAN MATCH takes it, e.g. 'session:*' "
        "(default: every generic key)",
    )
    exp.add_argument(
        "--format",
        choices=["csv", "jsonl"],
        help="override the extension of -o (to standard output: CSV for a mapped key, "
        "JSON Lines otherwise)",
    )
    exp.add_argument(
        "-o", "--output", help="file to write, replaced only on success (default: standard output)"
    )
    exp.add_argument(
        "--time",
        choices=["unit", "iso"],
        default="unit",
        help="CSV: write t in the map rule's time unit (default) or as ISO-8601 UTC with "
        "nanoseconds, e.g. 2023-11-14T22:13:20.000000000Z (import takes either)",
    )
    exp.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    exp.add_argument(
        "--tstorage",
        metavar="HOST:PORT",
        help="the running TStorage server to use, whatever the config names (default: the "
        "config's; an embedded data directory a running gateway serves is found through "
        "the run file its server writes there)",
    )
    exp.add_argument("--config", help=CONFIG_HELP)
    exp.set_defaults(func=_transfer)
    index = sub.add_parser("index", help="chunk summaries of mapped series")
    index_sub = index.add_subparsers(dest="index_command", required=True)
    build = index_sub.add_parser(
        "build",
        help="build and persist the summaries of mapped series ahead of time",
        description="Read every mapped series (or those whose List key matches --key) once "
        "and save its chunk summaries in TStorage under [tstorage] index_cid, so gateways "
        "start from them; series with valid saved summaries are only caught up. No gateway "
        "needs to stop. Shows a progress bar on a terminal.",
    )
    build.add_argument("--key", help="a glob over List keys, e.g. 'meters/7/*' (default: all)")
    build.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    build.add_argument("--config", default=DEFAULT_CONFIG, help="TOML file (default: %(default)s)")
    build.set_defaults(func=_index)
    check = sub.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file", nargs="?", help="the TOML configuration file (or --config)")
    # as the other commands take it
    check.add_argument("--config", help=CONFIG_HELP)
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

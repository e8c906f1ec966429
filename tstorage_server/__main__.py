"""``tstorage-server``: a durable TStorage-protocol server.

Prints ``listening on HOST:PORT`` to stdout once it accepts connections and writes the same
address to the run file ``tstorage.run`` in the data directory (removed on a clean stop;
:mod:`tstorage_server.runfile`), logs to stderr, and stops cleanly on SIGTERM or SIGINT. With ``--tls-cert``/``--tls-key`` it speaks TLS
(the official clients' ``ssl_context``), optionally requiring client certificates signed
by ``--tls-client-ca``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import ssl
import sys
from collections.abc import Sequence

from tstorage_server import limits, runfile
from tstorage_server.server import TStorageServer
from tstorage_server.store import (
    DEFAULT_SYNC_INTERVAL_S,
    EXIT_DATA_DIR_IN_USE,
    MAX_SYNC_INTERVAL_S,
    SYNC_MODES,
    DataDirInUse,
    LmdbStore,
)

log = logging.getLogger("tstorage_server")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="tstorage-server", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", required=True, help="directory of the durable store (created if missing)"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=2025, help="TCP port; 0 picks a free one (default 2025)"
    )
    parser.add_argument("--workers", type=int, default=8, help="threads for store work (default 8)")
    limits.add_arguments(parser)
    parser.add_argument(
        "--sync",
        choices=SYNC_MODES,
        default="commit",
        help="commit: fsync before a PUT is answered (survives power loss); interval: answer "
        "once the OS has the write, fsync every --sync-interval (survives kill -9 of any "
        "process; a power loss loses at most the interval) (default commit)",
    )
    parser.add_argument(
        "--sync-interval",
        type=float,
        default=DEFAULT_SYNC_INTERVAL_S,
        help=f"seconds between fsyncs with --sync interval, at most {MAX_SYNC_INTERVAL_S:g} "
        f"(default {DEFAULT_SYNC_INTERVAL_S:g})",
    )
    tls = parser.add_argument_group("TLS (off unless --tls-cert and --tls-key are given)")
    tls.add_argument("--tls-cert", help="PEM certificate chain of this server")
    tls.add_argument("--tls-key", help="PEM private key of --tls-cert")
    tls.add_argument(
        "--tls-client-ca",
        help="PEM CA bundle: clients must present a certificate signed by it",
    )
    parser.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="stop (cleanly) when the process that started this one ends, even by kill -9",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="stderr log level",
    )
    args = parser.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if not 0 < args.sync_interval <= MAX_SYNC_INTERVAL_S:
        parser.error(f"--sync-interval must be more than 0 and at most {MAX_SYNC_INTERVAL_S:g}")
    if args.tls_client_ca and not args.tls_cert:
        parser.error("--tls-client-ca needs --tls-cert and --tls-key")
    return args


def tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The server's TLS context from the ``--tls-*`` options, or None for plain TCP.

    Raises:
        ValueError: a certificate, key or CA file cannot be loaded (with its path).
    """
    if not args.tls_cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(
            f"cannot load --tls-cert {args.tls_cert} / --tls-key {args.tls_key}: {exc}"
        ) from None
    if args.tls_client_ca:
        try:
            ctx.load_verify_locations(args.tls_client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot load --tls-client-ca {args.tls_client_ca}: {exc}") from None
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


async def serve(args: argparse.Namespace) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code."""
    try:
        context = tls_context(args)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    try:
        store = LmdbStore(args.data_dir, sync=args.sync, sync_interval=args.sync_interval)
    except DataDirInUse as exc:
        log.error("%s", exc)
        return EXIT_DATA_DIR_IN_USE
    server = TStorageServer(
        store,
        args.host,
        args.port,
        workers=args.workers,
        limits=limits.from_args(args),
        ssl_context=context,
    )
    try:
        await server.start()
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", args.host, args.port, exc)
        store.close()
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"listening on {args.host}:{server.port}" + (" (TLS)" if context else ""), flush=True)
    log.info("serving data directory %s (sync=%s)", args.data_dir, args.sync)
    watch = (
        asyncio.create_task(_watch_parent(stop, args.parent_pid)) if args.exit_with_parent else None
    )
    # where we listen, for programs that find the data directory in use (gateway import)
    with runfile.published(args.data_dir, args.host, server.port, tls=context is not None):
        await stop.wait()
        if watch is not None:
            watch.cancel()
        log.info("stopping")
        await server.stop()
    store.close()
    return 0


async def _watch_parent(stop: asyncio.Event, parent: int, every_s: float = 0.1) -> None:
    # An embedding process killed by SIGKILL cannot stop us; the data directory's lock
    # would then keep its restart out. Orphans are re-parented, so a changed parent pid
    # means ours is gone.
    while os.getppid() == parent:
        await asyncio.sleep(every_s)
    log.warning("the parent process %d ended: stopping", parent)
    stop.set()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tstorage-server`` console script."""
    args = parse_args(argv)
    # the parent as early as we can know it: one that dies while the store opens still counts
    args.parent_pid = os.getppid()
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())

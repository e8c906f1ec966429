"""``tstorage-server``: a durable TStorage-protocol server.

Prints ``listening on HOST:PORT`` to stdout once it accepts connections, logs to stderr,
and stops cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from tstorage_server.server import DEFAULT_MAX_REQUEST_BYTES, TStorageServer
from tstorage_server.store import DataDirInUse, LmdbStore

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
    parser.add_argument(
        "--max-request-bytes",
        type=int,
        default=DEFAULT_MAX_REQUEST_BYTES,
        help="largest PUT/PUTA request (keys + payloads) held for one commit (default 1 GiB)",
    )
    parser.add_argument(
        "--write-stall-timeout",
        type=float,
        default=300.0,
        help="seconds a GET response may wait for a client that stopped reading (default 300)",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="stderr log level",
    )
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code."""
    try:
        store = LmdbStore(args.data_dir)
    except DataDirInUse as exc:
        log.error("%s", exc)
        return 2
    server = TStorageServer(
        store,
        args.host,
        args.port,
        workers=args.workers,
        max_request_bytes=args.max_request_bytes,
        write_stall_timeout=args.write_stall_timeout,
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
    print(f"listening on {args.host}:{server.port}", flush=True)
    log.info("serving data directory %s", args.data_dir)
    await stop.wait()
    log.info("stopping")
    await server.stop()
    store.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tstorage-server`` console script."""
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())

"""The ``znsocket`` command: run a znsocket server.

Example::

    znsocket --port 5000 --storage memory
    znsocket --host 127.0.0.1 --port 0 --storage redis://127.0.0.1:6379/0 --token s3cret
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence

from znsocket.server.auth import TOKENS_ENV_VAR

DEFAULT_PORT = 8080
DEFAULT_MAX_HTTP_BUFFER_SIZE = 5 * 1024 * 1024


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be between 0 and 65535")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``znsocket`` command."""
    parser = argparse.ArgumentParser(
        prog="znsocket",
        description="Run a znsocket server (Redis-like storage shared over socket.io).",
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help="TCP port; 0 picks a free one (default: %(default)s)",
    )
    parser.add_argument(
        "--host", default="0.0.0.0", help="address to bind (default: %(default)s, every interface)"
    )
    parser.add_argument(
        "--storage",
        default="memory",
        help="'memory' or a redis:// URL of a Redis server (default: %(default)s)",
    )
    parser.add_argument(
        "--max-http-buffer-size",
        type=_positive,
        default=DEFAULT_MAX_HTTP_BUFFER_SIZE,
        help="largest inbound packet in bytes; clients chunk larger messages; a larger "
        "packet closes the client's connection (default: %(default)s)",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        help="logging level (default: %(default)s)",
    )
    parser.add_argument(
        "--token",
        action="append",
        default=None,
        help=f"require clients to present this token (repeatable; also ${TOKENS_ENV_VAR}, "
        "comma-separated)",
    )
    parser.add_argument(
        "--ping-interval",
        type=float,
        default=None,
        help="seconds between heartbeats the server sends (default: 25)",
    )
    parser.add_argument(
        "--ping-timeout",
        type=float,
        default=None,
        help="seconds a client may take to answer a heartbeat before it is dropped (default: 20)",
    )
    parser.add_argument(
        "--cors-allowed-origins",
        default=None,
        help="origins allowed for browser clients, comma-separated, or '*'",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``znsocket`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level))
    tokens = list(args.token or [])
    tokens += [t for t in os.environ.get(TOKENS_ENV_VAR, "").split(",") if t.strip()]
    origins: str | list[str] | None = args.cors_allowed_origins
    if args.cors_allowed_origins and args.cors_allowed_origins != "*":
        origins = [o.strip() for o in args.cors_allowed_origins.split(",") if o.strip()]

    from znsocket.server.server import Server

    server = Server(
        port=args.port,
        host=args.host,
        max_http_buffer_size=args.max_http_buffer_size,
        storage=args.storage,
        tokens=[t.strip() for t in tokens] or None,
        cors_allowed_origins=origins,
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
    )
    logging.getLogger("znsocket").info(
        "Starting znsocket server on %s:%s (storage %s%s)",
        args.host,
        args.port,
        "redis" if args.storage != "memory" else "memory",
        ", token authentication on" if tokens else "",
    )
    try:
        server.run()
    except ValueError as exc:  # unsupported storage, non-positive heartbeat settings
        build_parser().error(str(exc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

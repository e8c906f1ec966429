"""The ``znsocket`` command: run a znsocket server.

It binds 127.0.0.1 unless ``--host`` names another address: the server has no
authentication unless tokens are given.

Example::

    znsocket --port 5000 --storage memory
    znsocket --host 0.0.0.0 --port 0 --storage redis://127.0.0.1:6379/0 --token s3cret
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from collections.abc import Sequence

from znsocket.hosts import is_loopback_host
from znsocket.protocol.chunks import ChunkLimits
from znsocket.protocol.framing import DEFAULT_MAX_DECODED_BYTES
from znsocket.server.auth import TOKENS_ENV_VAR
from znsocket.server.serve import DEFAULT_MAX_CONNECTIONS, DEFAULT_REQUEST_TIMEOUT_S
from znsocket.server.sio import DEFAULT_MAX_ATTACHMENTS
from znsocket.server.transport import DEFAULT_SEND_BUFFER_BYTES, DEFAULT_SEND_TIMEOUT_S

DEFAULT_PORT = 8080
DEFAULT_HOST = "127.0.0.1"
DEFAULT_MAX_HTTP_BUFFER_SIZE = 5 * 1024 * 1024
_CHUNKS = ChunkLimits()


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
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
        "--host",
        default=DEFAULT_HOST,
        help="address to bind (default: %(default)s, this machine only; 0.0.0.0 for every "
        "interface - then use --token)",
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
    limits = parser.add_argument_group(
        "limits", "bounds on what one client can make the server hold (docs/deployment.md)"
    )
    limits.add_argument(
        "--max-connections",
        type=_positive,
        default=DEFAULT_MAX_CONNECTIONS,
        help="connections served at once; more wait to be accepted (default: %(default)s)",
    )
    limits.add_argument(
        "--request-timeout",
        type=_seconds,
        default=DEFAULT_REQUEST_TIMEOUT_S,
        help="seconds an HTTP request may take to arrive (line and headers, then body) "
        "before its connection is closed (default: %(default)s)",
    )
    limits.add_argument(
        "--max-attachments",
        type=_positive,
        default=DEFAULT_MAX_ATTACHMENTS,
        help="binary attachments one event may announce (default: %(default)s)",
    )
    limits.add_argument(
        "--max-attachment-bytes",
        type=_positive,
        default=None,
        help="bytes the binary attachments of one event may hold together "
        "(default: --max-http-buffer-size)",
    )
    limits.add_argument(
        "--max-decoded-size",
        type=_positive,
        default=DEFAULT_MAX_DECODED_BYTES,
        help="largest compressed or chunked message after decompression, in bytes "
        "(default: %(default)s)",
    )
    limits.add_argument(
        "--send-buffer-per-connection",
        type=_positive,
        default=DEFAULT_SEND_BUFFER_BYTES,
        help="bytes of answers one connection may have waiting to be written before the "
        "server stops reading its requests until they drain (default: %(default)s)",
    )
    limits.add_argument(
        "--send-timeout",
        type=_seconds,
        default=DEFAULT_SEND_TIMEOUT_S,
        help="seconds a connection may stay over --send-buffer-per-connection before it "
        "is dropped (default: %(default)s)",
    )
    limits.add_argument(
        "--chunk-buffer-per-connection",
        type=_positive,
        default=_CHUNKS.max_buffered_bytes_per_owner,
        help="bytes of incomplete chunked messages one connection may have buffered "
        "(default: %(default)s)",
    )
    limits.add_argument(
        "--chunk-buffer-total",
        type=_positive,
        default=_CHUNKS.max_buffered_bytes,
        help="bytes of incomplete chunked messages buffered over all connections "
        "(default: %(default)s)",
    )
    limits.add_argument(
        "--chunk-timeout",
        type=_seconds,
        default=_CHUNKS.assembly_timeout_s,
        help="seconds a chunked message may take from its first to its last chunk "
        "(default: %(default)s)",
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

    chunk_limits = ChunkLimits(
        max_buffered_bytes_per_owner=args.chunk_buffer_per_connection,
        max_buffered_bytes=args.chunk_buffer_total,
        assembly_timeout_s=args.chunk_timeout,
    )
    server = Server(
        port=args.port,
        host=args.host,
        max_http_buffer_size=args.max_http_buffer_size,
        storage=args.storage,
        tokens=[t.strip() for t in tokens] or None,
        cors_allowed_origins=origins,
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
        max_connections=args.max_connections,
        request_timeout=args.request_timeout,
        max_attachments=args.max_attachments,
        max_attachment_bytes=args.max_attachment_bytes,
        max_decoded_bytes=args.max_decoded_size,
        send_buffer_per_connection=args.send_buffer_per_connection,
        send_timeout=args.send_timeout,
        chunk_limits=chunk_limits,
    )
    logging.getLogger("znsocket").info(
        "Starting znsocket server on %s:%s (storage %s%s)",
        args.host,
        args.port,
        "redis" if args.storage != "memory" else "memory",
        ", token authentication on" if tokens else "",
    )
    if not tokens and not is_loopback_host(args.host):
        logging.getLogger("znsocket").warning(
            "no token authentication on %s: anyone who reaches this address can read and "
            "change every key (give --token, or bind 127.0.0.1)",
            args.host,
        )
    try:
        server.run()
    except ValueError as exc:  # unsupported storage, non-positive heartbeat or limit settings
        build_parser().error(str(exc))
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        print(f"znsocket: cannot start: {args.host}:{args.port} is in use by another server "
              "(give another --port, or stop that one)", file=sys.stderr)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

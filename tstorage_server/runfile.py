"""The run file: where the server serving a data directory listens, for other programs.

A server writes ``tstorage.run`` (JSON: host, port, pid, tls) into its data directory
once it accepts connections and removes it when it stops cleanly. A program that finds
the data directory in use (``gateway import``/``export`` beside a running gateway) reads
it to reach that server instead of opening the directory itself. A server killed with
SIGKILL leaves its file behind; such a file is stale, and :func:`read` recognises it by
the data directory's lock being free (every server holds that lock while it serves).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("tstorage_server")

RUN_FILE = "tstorage.run"
#: the file a store holds an exclusive ``flock`` on for as long as it serves the directory
LOCK_FILE = "server.lock"

# A server bound to every address is reached on loopback.
_ANY_ADDRESS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


@dataclass(frozen=True)
class RunInfo:
    """A running server's address, as its run file gives it.

    Attributes:
        host: address to connect to (a wildcard bind address is given as loopback).
        port: TCP port.
        pid: the server's process id.
        tls: whether the server speaks TLS.
    """

    host: str
    port: int
    pid: int
    tls: bool = False

    @property
    def address(self) -> str:
        """``HOST:PORT`` (IPv6 in brackets)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def write(
    data_dir: str | os.PathLike[str], host: str, port: int, *, tls: bool = False
) -> Path | None:
    """Write the run file of a server of ``data_dir`` now listening on ``host:port``.

    The file appears whole (written aside, then renamed), so a reader never sees half of it.
    Returns its path, or ``None`` when it cannot be written (logged: the server serves on,
    only other programs cannot find it by its data directory).
    """
    path = Path(data_dir) / RUN_FILE
    info = {"host": _ANY_ADDRESS.get(host, host), "port": port, "pid": os.getpid(), "tls": tls}
    tmp = path.with_name(f".{RUN_FILE}.{os.getpid()}")
    try:
        tmp.write_text(json.dumps(info) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("cannot write the run file %s: %s", path, exc)
        return None
    return path


def remove(data_dir: str | os.PathLike[str]) -> None:
    """Remove the run file if this process wrote it (a newer server's file stays)."""
    path = Path(data_dir) / RUN_FILE
    info = _parse(path)
    if info is not None and info.pid == os.getpid():
        with contextlib.suppress(OSError):
            path.unlink()


@contextlib.contextmanager
def published(
    data_dir: str | os.PathLike[str], host: str, port: int, *, tls: bool = False
) -> Iterator[Path | None]:
    """The run file for as long as the ``with`` block runs (a server's serving life)."""
    path = write(data_dir, host, port, tls=tls)
    try:
        yield path
    finally:
        remove(data_dir)


def read(data_dir: str | os.PathLike[str]) -> RunInfo | None:
    """The address of the server serving ``data_dir``, or ``None`` when none does.

    ``None`` also for a stale file (the directory's lock is free: its server is gone) and
    for a file that cannot be read or parsed.
    """
    path = Path(data_dir)
    info = _parse(path / RUN_FILE)
    if info is None or not _locked(path / LOCK_FILE):
        return None
    return info


def _parse(path: Path) -> RunInfo | None:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return RunInfo(str(raw["host"]), int(raw["port"]), int(raw["pid"]), bool(raw["tls"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _locked(lock: Path) -> bool:
    # A shared lock is refused while a server holds its exclusive one; taken, it is let go
    # at once (a server starting just then retries, as after any server's exit).
    try:
        fh = lock.open("rb")
    except FileNotFoundError:
        return False
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False

"""The embedded TStorage: our server started for the gateway, and kept running.

The server is a child process (its own interpreter: TStorage's work does not take turns
with the gateway's green threads). :meth:`EmbeddedTStorage.supervise` watches it: when it
exits without being asked to (killed, crashed), the child is reaped, a warning is logged,
and a new one starts on the same address after a backoff delay (``[tstorage.embedded]
restart_delay``, doubling up to ``restart_max_delay``). Its data directory is durable, so
everything acknowledged before the crash is there again; the link's pooled connections to
the dead child are dropped on their next use. While no child runs, requests fail with
``TStorageUnavailable`` as for any unreachable TStorage.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.config import EmbeddedConfig

log = logging.getLogger("gateway")

#: how long a start waits for a previous server to release the data directory
_BUSY_RETRY_S = 5.0
_LISTENING = re.compile(r"listening on (\S+?):(\d+)")


@dataclass
class EmbeddedTStorage:
    """Our TStorage server started for the gateway as a child process."""

    config: EmbeddedConfig
    host: str = ""
    port: int = 0
    #: times a child that exited unexpectedly was replaced by a running one
    restarts: int = 0
    _stop: list[Callable[[], None]] = field(default_factory=list, repr=False)
    _proc: subprocess.Popen[str] | None = field(default=None, init=False, repr=False)
    _exited: Any = field(default=None, init=False, repr=False)  # set once _proc is reaped
    _stopping: Any = field(default=None, init=False, repr=False)  # set by stop()
    _watcher: Any = field(default=None, init=False, repr=False)

    @property
    def pid(self) -> int | None:
        """The child's process id, or ``None`` before it started."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """True while the child runs (it has not exited)."""
        return self._proc is not None and self._proc.poll() is None

    def status(self) -> dict[str, Any]:
        """What the gateway's health endpoint reports about this server."""
        return {
            "mode": self.config.mode,
            "address": f"{self.host}:{self.port}",
            "running": self.running,
            "pid": self.pid,
            "restarts": self.restarts,
        }

    def start(self, busy_wait_s: float = _BUSY_RETRY_S) -> EmbeddedTStorage:
        """Start the server; returns once it accepts connections.

        Args:
            busy_wait_s: how long to wait for the data directory when another server
                holds it (the server of a gateway that was just killed lets go within
                about 0.1 s); 0 refuses at once.

        Raises:
            DataDirInUse: another server holds the data directory.
        """
        c = self.config
        c.data_dir.mkdir(parents=True, exist_ok=True)
        self._proc = self._spawn(c.port, busy_wait_s)
        self._stop.append(self._terminate)
        return self

    def _limits(self) -> Any:
        # imported here: a gateway on a remote TStorage never loads the server
        from tstorage_server.limits import Limits

        return Limits(**self.config.limits.given())

    def _spawn(self, port: int, busy_wait_s: float) -> subprocess.Popen[str]:
        # imported here: a gateway on a remote TStorage never loads the server
        from tstorage_server.store import EXIT_DATA_DIR_IN_USE, DataDirInUse

        c = self.config
        argv = [sys.executable, "-m", "tstorage_server", "--data-dir", str(c.data_dir),
                "--host", c.host, "--port", str(port), "--exit-with-parent",
                "--sync", c.sync, "--sync-interval", repr(c.sync_interval),
                *self._limits().argv()]  # fmt: skip
        deadline = time.monotonic() + busy_wait_s
        while True:
            # its own session: a Ctrl-C or a signal to the gateway's process group reaches
            # the gateway alone, which stops the child itself (else the child's exit would
            # race the stop and look like a crash to restart); it exits with its parent
            proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                start_new_session=True,
            )  # fmt: skip
            assert proc.stdout is not None
            output: list[str] = []
            for line in proc.stdout:
                m = _LISTENING.search(line)
                if m:
                    self.host, self.port = c.host, int(m.group(2))
                    break
                output.append(line)
            else:
                status = proc.wait()
                text = "".join(output)
                if status == EXIT_DATA_DIR_IN_USE:
                    if time.monotonic() < deadline:
                        time.sleep(0.1)
                        continue
                    raise DataDirInUse(f"data directory {c.data_dir} is used by another server")
                raise RuntimeError(
                    f"embedded TStorage server exited with status {status}: {text.strip()}"
                )
            break
        exited = threading.Event()
        threading.Thread(target=_drain, args=(proc, exited), daemon=True).start()
        self._exited = exited
        return proc

    def _terminate(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        proc = self._proc
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if self._watcher is not None:
            self._watcher.join(10)

    def supervise(self) -> None:
        """Restart the child whenever it exits unexpectedly.

        Each exit is logged with its status and each restart with its count; the delay
        before a restart starts at ``restart_delay`` and doubles with every restart that
        follows a child which ran less than ``restart_max_delay``, up to that bound.
        """
        if self._proc is None or self._watcher is not None:
            return
        self._stopping = threading.Event()
        self._watcher = threading.Thread(
            target=self._watch, name="embedded-tstorage-supervisor", daemon=True
        )
        self._watcher.start()

    def _watch(self) -> None:
        c = self.config
        stopping = self._stopping
        delay = c.restart_delay
        started = time.monotonic()
        while not stopping.is_set():
            proc = self._proc
            assert proc is not None
            self._exited.wait()  # woken when the child's output ends and it is reaped
            status = proc.returncode
            if stopping.is_set():
                return
            if time.monotonic() - started >= c.restart_max_delay:
                delay = c.restart_delay  # it ran a good while: start the backoff afresh
            log.warning(
                "embedded TStorage (pid %d) exited with status %s; restarting in %.1f s",
                proc.pid, status, delay,
            )  # fmt: skip
            while not stopping.wait(delay):
                try:
                    self._proc = self._spawn(self.port, _BUSY_RETRY_S)
                except Exception as exc:
                    delay = min(max(delay * 2, 0.1), c.restart_max_delay)
                    log.error(
                        "embedded TStorage did not restart: %s; next try in %.1f s", exc, delay
                    )
                    continue
                if stopping.is_set():  # stop() raced the restart: end the new child too
                    self._proc.terminate()
                    self._proc.wait(10)
                    return
                self.restarts += 1
                started = time.monotonic()
                log.warning(
                    "embedded TStorage restarted (restart %d, pid %d) at %s:%s",
                    self.restarts, self._proc.pid, self.host, self.port,
                )  # fmt: skip
                delay = min(max(delay * 2, 0.1), c.restart_max_delay)
                break

    def stop(self) -> None:
        """Stop the server and its supervision (safe to call twice)."""
        while self._stop:
            self._stop.pop()()


def _drain(proc: subprocess.Popen[str], exited: Any) -> None:
    # Read the child's output (so its pipe never fills) until the child ends, then reap it
    # (no zombie) and tell the supervisor. Blocking reads, not polling, in a green thread.
    for _ in proc.stdout or ():
        pass
    proc.wait()
    exited.set()

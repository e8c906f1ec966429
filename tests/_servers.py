"""Start real server processes for tests and wait until they listen.

Every server of this project prints one line ``listening on HOST:PORT`` (to stdout or
stderr) once its socket accepts connections, and accepts ``--port 0`` so the OS picks a
free port. ``spawn`` runs such a command, reads the line, and returns a handle; the
handle stops the process (SIGTERM, then SIGKILL) and shows its output when a test fails.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
LISTENING = re.compile(rb"listening on (?:\S+?):(\d+)")


@dataclass
class ServerProcess:
    """A running server started by :func:`spawn`."""

    argv: list[str]
    proc: subprocess.Popen[bytes]
    host: str
    port: int
    output: deque[bytes] = field(default_factory=lambda: deque(maxlen=2000))

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        """``http://host:port`` of the server."""
        return f"http://{self.host}:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def text(self) -> str:
        """Everything the process printed so far (last 2000 lines)."""
        return b"".join(self.output).decode(errors="replace")

    def kill(self) -> None:
        """SIGKILL, as a crash would: no clean-up runs."""
        if self.alive():
            self.proc.kill()
        self.proc.wait(10)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait, then SIGKILL; returns the exit code."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _pump(proc: subprocess.Popen[bytes], sink: deque[bytes], port_box: list[int]) -> None:
    assert proc.stdout is not None
    for line in iter(proc.stdout.readline, b""):
        sink.append(line)
        if not port_box:
            m = LISTENING.search(line)
            if m:
                port_box.append(int(m.group(1)))


def spawn(
    argv: Sequence[str],
    *,
    host: str = "127.0.0.1",
    timeout: float = 30.0,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    session: bool = False,
) -> ServerProcess:
    """Run ``argv`` and wait for its ``listening on HOST:PORT`` line.

    ``argv[0]`` may name a console script of this project (found next to the running
    interpreter). ``session``: in a new session, its own process group (what a terminal's
    Ctrl-C reaches). Raises ``RuntimeError`` with the process output if it exits or stays
    silent for ``timeout`` seconds.
    """
    argv = list(argv)
    exe = VENV_BIN / argv[0]
    if exe.exists():
        argv[0] = str(exe)
    full_env = dict(os.environ, PYTHONUNBUFFERED="1")
    if env:
        full_env.update(env)
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=full_env,
        cwd=cwd or ROOT,
        start_new_session=session,
    )
    sink: deque[bytes] = deque(maxlen=2000)
    port_box: list[int] = []
    threading.Thread(target=_pump, args=(proc, sink, port_box), daemon=True).start()
    deadline = time.monotonic() + timeout
    while not port_box:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait(10)
            out = b"".join(sink).decode(errors="replace")
            raise RuntimeError(f"{argv} did not start listening:\n{out}")
        time.sleep(0.02)
    return ServerProcess(argv, proc, host, port_box[0], sink)


def python_argv(module: str, *args: str) -> list[str]:
    """``python -m module args…`` with the interpreter running the tests."""
    return [sys.executable, "-m", module, *args]

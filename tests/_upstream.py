"""Run the released upstream ``znsocket==0.3.0`` next to ours, for interop tests.

Upstream and this project share the import name ``znsocket``, so upstream lives in its
own virtualenv, ``.venv-upstream-znsocket/`` at the repository root (gitignored by
``.venv-*/``), created once on first use and reused afterwards.

API:

* :func:`upstream_python` - path of the upstream interpreter (creates the venv if needed).
* :func:`run_upstream` - run a Python driver script (source text or a file) in that
  interpreter; returns the completed process, raising with its output on failure.
* :func:`run_upstream_json` - same, but the driver prints one JSON document as its last
  line of stdout, which is decoded and returned.
* :func:`start_upstream_server` - start upstream's ``znsocket`` CLI on a free port and
  wait until the port accepts connections (upstream prints no ``listening on`` line);
  returns a :class:`tests._servers.ServerProcess`, so it is used like ``spawn``.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from tests._servers import ROOT, ServerProcess, _pump

VENV = ROOT / ".venv-upstream-znsocket"
UPSTREAM_REQUIREMENTS = ("znsocket==0.3.0", "numpy")
_STAMP = VENV / ".installed-znsocket-0.3.0"


def upstream_python() -> Path:
    """Return the upstream venv's interpreter, creating the venv once (process-safe)."""
    python = VENV / "bin" / "python"
    if _STAMP.exists():
        return python
    VENV.mkdir(parents=True, exist_ok=True)  # `python -m venv` accepts an existing folder
    lock_path = VENV / ".lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test processes build it only once
        if not _STAMP.exists():
            if not python.exists():
                subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
            proc = subprocess.run(
                [str(python), "-m", "pip", "install", "-q", *UPSTREAM_REQUIREMENTS],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                raise RuntimeError(f"installing upstream znsocket failed:\n{proc.stderr}")
            _STAMP.touch()
    return python


def run_upstream(
    script: str | os.PathLike[str],
    *args: str,
    timeout: float = 240.0,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a driver in the upstream interpreter.

    Args:
        script: Python source text, or the path of a ``.py`` file.
        *args: Command-line arguments for the driver (``sys.argv[1:]``).
        timeout: Seconds before the driver is killed.
        env: Extra environment variables.

    Returns:
        The completed process (stdout/stderr as text).

    Raises:
        RuntimeError: The driver exited non-zero (the message holds its output).
    """
    python = str(upstream_python())
    path = Path(script) if not isinstance(script, str) or script.endswith(".py") else None
    argv = [python, str(path.resolve())] if path else [python, "-c", str(script)]
    full_env = dict(os.environ, PYTHONUNBUFFERED="1")
    full_env.pop("PYTHONPATH", None)  # never let our znsocket shadow upstream's
    if env:
        full_env.update(env)
    proc = subprocess.run(
        [*argv, *args], capture_output=True, text=True, timeout=timeout, env=full_env, cwd="/tmp"
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"upstream driver failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        )
    return proc


def run_upstream_json(script: str | os.PathLike[str], *args: str, **kwargs: Any) -> Any:
    """Run a driver whose last stdout line is a JSON document; return it decoded."""
    out = run_upstream(script, *args, **kwargs).stdout.strip().splitlines()
    if not out:
        raise RuntimeError("upstream driver printed nothing")
    return json.loads(out[-1])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_upstream_server(
    *extra_args: str, timeout: float = 60.0, port: int | None = None
) -> ServerProcess:
    """Start upstream's ``znsocket`` CLI and wait until its port accepts connections.

    Args:
        *extra_args: More CLI options, e.g. ``"--max-http-buffer-size", "1000000"``.
        timeout: Seconds to wait for the port.
        port: Port to use; a free one by default.

    Returns:
        A :class:`ServerProcess` (``.url`` is ``http://127.0.0.1:PORT``; stop with ``.stop()``).
    """
    exe = upstream_python().parent / "znsocket"
    port = port or free_port()
    argv = [str(exe), "--port", str(port), *extra_args]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("PYTHONPATH", None)
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd="/tmp",
    )
    sink: deque[bytes] = deque(maxlen=2000)
    threading.Thread(target=_pump, args=(proc, sink, [0]), daemon=True).start()
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait(10)
            raise RuntimeError(f"{argv} did not open its port:\n" + b"".join(sink).decode())
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.05)
    return ServerProcess(argv, proc, "127.0.0.1", port, sink)

"""The guards around other libraries' internals: a tested version range and a switch.

The server reaches past the public API of three libraries, for speed and to bound what a
hostile client can make it hold. Every such touch of one library sits in one module:

* :mod:`znsocket.server._socketio_private` - python-socketio,
* :mod:`znsocket.server._engineio_private` - python-engineio,
* :mod:`znsocket.server._eventlet_private` - eventlet.

Each module opens a :class:`Door` at import. The door compares the installed version with
the range the test suite ran against (the caps in ``pyproject.toml``). Outside that range
the module leaves the library alone - the server runs on the library's own path - and the
door logs one warning, when the first server is built, naming what is lost.

What goes through a door is of two kinds:

* **fast paths** - shortcuts that answer exactly as the library's own path would, only
  cheaper. ``ZNSOCKET_FAST_PATHS=0`` in the environment turns all of them off (for
  comparing the two paths, or to rule them out when hunting a bug). Each counts its uses
  in :attr:`Door.used`, so a test can tell that it ran.
* **guards** - bounds and error answers for hostile input (``docs/limits.md``). They stay
  on with the fast paths off, and go only with a version outside the tested range.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version

__all__ = ["FAST_PATHS_ENV", "Door", "doors", "fast_paths_enabled", "usage"]

log = logging.getLogger(__name__)

#: The environment variable that turns every fast path off when set to ``0``.
FAST_PATHS_ENV = "ZNSOCKET_FAST_PATHS"
_OFF = frozenset({"0", "false", "no", "off"})


def fast_paths_enabled() -> bool:
    """Whether the environment leaves the fast paths on (the default)."""
    return os.environ.get(FAST_PATHS_ENV, "1").strip().lower() not in _OFF


def _release(text: str) -> tuple[int, ...]:
    """The leading numeric release of a version string: ``"5.19.0rc1"`` -> ``(5, 19, 0)``."""
    match = re.match(r"[0-9]+(?:\.[0-9]+)*", text.strip())
    if match is None:
        return ()
    return tuple(int(part) for part in match.group().split("."))


@dataclass
class Door:
    """The guard of one library's internals.

    Args:
        distribution: The library's distribution name (as ``pip`` knows it).
        lowest: The oldest tested release (``pyproject.toml``'s lower bound).
        below: The first release not tested (``pyproject.toml``'s cap).
        fast_paths: Names of the fast paths behind this door; each counts its uses.
        lost: What the server gives up outside the tested range, for the warning.
    """

    distribution: str
    lowest: str
    below: str
    fast_paths: tuple[str, ...]
    lost: str
    #: The installed version (``"unknown"`` if the distribution has no metadata).
    installed: str = field(init=False)
    #: Whether the installed version is in the tested range: the door is open.
    open: bool = field(init=False)
    #: Whether the fast paths run: the door is open and the environment allows them.
    fast: bool = field(init=False)
    #: Uses of each fast path so far, in this process.
    used: dict[str, int] = field(init=False)
    _announced: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        try:
            self.installed = version(self.distribution)
        except PackageNotFoundError:
            self.installed = "unknown"
        release = _release(self.installed)
        self.open = bool(release) and _release(self.lowest) <= release < _release(self.below)
        self.fast = self.open and fast_paths_enabled()
        self.used = dict.fromkeys(self.fast_paths, 0)
        _DOORS.append(self)

    @property
    def tested(self) -> str:
        """The tested range, written as in ``pyproject.toml``."""
        return f">={self.lowest},<{self.below}"

    def announce(self) -> None:
        """Log, once per process, that this library runs on its own path (if it does)."""
        if self.open or self._announced:
            return
        self._announced = True
        log.warning(
            "%s %s is outside the tested range %s: the server uses its own path only, without %s",
            self.distribution,
            self.installed,
            self.tested,
            self.lost,
        )


_DOORS: list[Door] = []


def doors() -> list[Door]:
    """Every door opened so far in this process."""
    return list(_DOORS)


def usage() -> dict[str, dict[str, object]]:
    """Per library: installed version, whether its door is open, whether its fast paths
    run, and how often each ran (for tests and diagnostics)."""
    return {
        door.distribution: {
            "installed": door.installed,
            "open": door.open,
            "fast": door.fast,
            "used": dict(door.used),
        }
        for door in _DOORS
    }

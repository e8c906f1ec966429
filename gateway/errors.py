"""Errors of the gateway, drawn in one place.

::

    GatewayError
    ├── ConfigError            the configuration file is invalid (carries every issue)
    ├── KeyMappingError        a key matches a rule's shape but not its types/ranges,
    │                          or no rule while unmapped keys are rejected (also a ValueError)
    ├── CodecError             a value the rule's payload codec cannot encode or a payload it
    │                          cannot decode (also a ValueError)
    ├── IndexBuilding          a series' summaries are being built in the background and
    │                          the request waited its bound: nothing was read or written
    └── TStorageUnavailable    TStorage could not be reached or failed a request; a write
        │                      that raises it was certainly not stored
        └── TStorageOutcomeUnknown
                               a write reached TStorage but no answer came back (timeout,
                               connection lost): it may or may not be stored

Storage errors that reach websocket clients become znsocket error envelopes whose
``type`` is the class name: ``KeyMappingError``, ``IndexBuilding``, ``TStorageUnavailable``
and ``TStorageOutcomeUnknown`` reach clients by these names, and tell them what went wrong and
what became of a write (``docs/gateway.md``).
"""

from __future__ import annotations

from dataclasses import dataclass


class GatewayError(Exception):
    """Root of every error raised by the gateway package."""


@dataclass(frozen=True)
class ConfigIssue:
    """One problem found in a configuration file.

    Attributes:
        location: TOML path of the offending value, e.g. ``map[2].codec``.
        message: What is wrong.
        hint: How to fix it (may be empty).
        line: 1-based line in the file when it could be located, else ``None``.
        severity: ``"error"`` (the gateway refuses to start) or ``"warning"``.
    """

    location: str
    message: str
    hint: str = ""
    line: int | None = None
    severity: str = "error"

    def format(self, file: str) -> str:
        """Render as ``file:line: location: message (hint: …)``."""
        where = f"{file}:{self.line}" if self.line is not None else file
        text = f"{where}: {self.severity}: {self.location}: {self.message}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


class ConfigError(GatewayError):
    """The configuration file cannot be used; ``issues`` lists every problem found."""

    def __init__(self, file: str, issues: list[ConfigIssue]) -> None:
        self.file = file
        self.issues = issues
        errors = [i for i in issues if i.severity == "error"]
        super().__init__(
            f"{file}: {len(errors)} error(s)\n" + "\n".join(i.format(file) for i in issues)
        )


class KeyMappingError(GatewayError, ValueError):
    """A key cannot be mapped onto TStorage (wrong placeholder type, out of range, no rule)."""


class CodecError(GatewayError, ValueError):
    """A value cannot be encoded by, or a payload decoded with, a rule's payload codec."""


class IndexBuilding(GatewayError):
    """The first read of a series started (or joined) the streamed build of its summaries,
    which did not end within ``[tstorage] build_wait`` seconds.

    The build goes on in the background (its progress is logged); the request was not
    carried out: nothing was read, and a write was not stored. Retrying later succeeds
    once the build is over.
    """


class TStorageUnavailable(GatewayError):
    """TStorage could not be reached, timed out or refused a request.

    Raised by a write only when it is certain that nothing was stored: no byte of the
    request was sent (TStorage unreachable, every connection busy until the timeout) or
    TStorage answered with an error. When that cannot be known, a write raises the
    subclass :class:`TStorageOutcomeUnknown` instead. The link reconnects with backoff on
    the next request.
    """


class TStorageRefused(TStorageUnavailable):
    """TStorage answered a write with an error: nothing of it was stored.

    Sending the same records again is refused again (e.g. a request over the server's
    limits), unlike a write that found TStorage unreachable.
    """


class TStorageOutcomeUnknown(TStorageUnavailable):
    """A write was sent to TStorage but no answer came back (timeout, connection lost).

    It was not acknowledged, yet TStorage may have stored it (a server that was only slow
    stores it when it resumes): read the data back to find out. The same records (same
    keys) written again read back the same, but a repeated command may write others (an
    append takes a new time). A subclass of :class:`TStorageUnavailable`, so code catching
    that keeps catching it.
    """

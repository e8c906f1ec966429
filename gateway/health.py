"""``GET /health``: the gateway's state, as JSON on its own port, for probes and operators.

Answers ``200`` while the gateway can serve and ``503`` while its embedded TStorage is not
running (between a crash and its restart)::

    {"status": "ok",
     "tstorage": {"address": "127.0.0.1:45517",
                  "embedded": {"mode": "process", "address": "127.0.0.1:45517",
                               "running": true, "pid": 4242, "restarts": 1}},
     "index": {"held_bytes": 131052544, "budget_bytes": 134217728, ...}}

``embedded`` is ``null`` for a remote TStorage. ``restarts`` counts the times the
supervisor replaced a child that had exited unexpectedly. ``index`` is what the series
indexes hold against ``[tstorage] index_budget_bytes`` and ``index_budget``
(:meth:`gateway.storage.series_index.SeriesIndexes.memory`): ``held_bytes`` (summary rows
plus cached chunks, at most ``budget_bytes`` once a read has made room), ``summary_rows``
and ``summary_bytes``, ``cached_chunks``, ``cached_records`` and ``cached_bytes``, and
``held_records`` against ``budget_records`` (``null`` unless ``index_budget`` is set).
With ``[tstorage.journal]``, ``journal`` is
:meth:`gateway.storage.write_behind.WriteBehind.status` (what was acknowledged and is not
yet in TStorage, and why). The endpoint reports state the gateway already holds; it sends nothing to TStorage, so probing
it costs TStorage nothing.
It needs no token: it shows no data, only whether the server behind the gateway runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from gateway.embedded import EmbeddedTStorage
from gateway.storage import TStorageLink

#: the endpoint's path
HEALTH_PATH = "/health"


class HealthEndpoint:
    """WSGI middleware answering :data:`HEALTH_PATH`; every other path goes to ``app``.

    Args:
        app: the WSGI application to wrap.
        link: the gateway's TStorage link (for the address).
        embedded: the embedded TStorage, or ``None`` for a remote one.
    """

    def __init__(
        self,
        app: Any,
        link: TStorageLink,
        embedded: EmbeddedTStorage | None,
        index: Callable[[], dict[str, int | None]] | None = None,
    ) -> None:
        self.app = app
        self.link = link
        self.embedded = embedded
        self.index = index

    def state(self) -> dict[str, Any]:
        """The JSON document the endpoint answers."""
        emb = self.embedded.status() if self.embedded is not None else None
        ok = emb is None or bool(emb["running"])
        state: dict[str, Any] = {
            "status": "ok" if ok else "tstorage-down",
            "tstorage": {"address": self.link.address, "embedded": emb},
        }
        if self.index is not None:
            state["index"] = self.index()
        behind = self.link.journal
        if behind is not None:
            state["journal"] = behind.status()
        return state

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO", "") != HEALTH_PATH:
            return self.app(environ, start_response)
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            body = b"GET only\n"
            start_response(
                "405 Method Not Allowed",
                [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
            )
            return [body]
        state = self.state()
        body = json.dumps(state).encode() + b"\n"
        start_response(
            "200 OK" if state["status"] == "ok" else "503 Service Unavailable",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [body]


def mount(
    app: Any,
    link: TStorageLink,
    embedded: EmbeddedTStorage | None,
    index: Callable[[], dict[str, int | None]] | None = None,
) -> HealthEndpoint:
    """Serve :data:`HEALTH_PATH` from the gateway's ``app`` (its ``wsgi_app`` is wrapped)."""
    endpoint = HealthEndpoint(app.wsgi_app, link, embedded, index)
    app.wsgi_app = endpoint
    return endpoint

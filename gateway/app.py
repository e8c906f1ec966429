"""Build and run the gateway: embedded TStorage, storage, znsocket server.

The socket.io wiring is znsocket's (:func:`znsocket.server.create_app` and
:func:`znsocket.server.serve`); the gateway only supplies the storage, the options from the
configuration and the authentication hooks.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.auth import policy_hooks
from gateway.config import GatewayConfig, ServerConfig
from gateway.embedded import EmbeddedTStorage
from gateway.storage import GatewayStorage, LinkSettings, TStorageLink

if TYPE_CHECKING:
    from gateway.timeseries.reads import TimeSeriesReads

log = logging.getLogger("gateway")


@dataclass
class Gateway:
    """A configured gateway: TStorage link, storage and znsocket app."""

    config: GatewayConfig
    storage: GatewayStorage
    app: Any
    embedded: EmbeddedTStorage | None = None
    #: Time-window reads and resume (the Python API behind the ``ts:*`` events).
    reads: TimeSeriesReads | None = None

    def follow(self, interval: float | None = None, watch_s: float | None = None) -> None:
        """Emit ``refresh`` events for records written by others (a background green thread).

        Every ``interval`` seconds (``[server] follow_interval``) the indexes of the keys
        read within ``watch_s`` seconds (``[server] watch_window``) and the generic keys
        catch up with TStorage, each by one GET of what was acquired since its watermark;
        whatever arrived from another gateway or program is announced to the websocket
        clients as upstream clients announce their own writes, one event per key and poll
        (with ``[auth]``, to the clients whose token may read the key).

        With a message queue, these events go to this process's clients only: every
        gateway follows TStorage for its own clients, so relaying them would repeat each
        event once per gateway. Clients' own ``refresh`` events still cross gateways.
        """
        server = self.config.server
        every = server.follow_interval if interval is None else interval
        window = server.watch_window if watch_s is None else watch_s
        app = self.app
        local = server.message_queue is not None

        def emit(target: str, data: dict[str, Any]) -> None:
            # to the clients whose token may read the key (everyone without [auth])
            app.emit_refresh(target, data, ignore_queue=local)

        self.storage.follow(emit)

        def loop() -> None:
            due = time.monotonic()
            while True:
                # a fixed rate: a slow poll does not push the next one back
                due = max(due + every, time.monotonic())
                time.sleep(max(due - time.monotonic(), 0.0))
                try:
                    self.storage.poll(window)
                except Exception as exc:  # TStorage down: commands report it; keep following
                    log.debug("change feed: %s", exc)

        threading.Thread(target=loop, name="gateway-follower", daemon=True).start()

    def close(self) -> None:
        """Release TStorage connections and stop the embedded server."""
        self.storage.link.close()
        if self.embedded is not None:
            self.embedded.stop()


def build(config: GatewayConfig) -> Gateway:
    """Start the embedded TStorage (if configured), load the storage, build the server."""
    from znsocket.server import create_app

    t = config.tstorage
    embedded = None
    if t.embedded is not None:
        embedded = EmbeddedTStorage(t.embedded).start()
        host, port = embedded.host, embedded.port
        log.info(
            "TStorage: embedded (%s, sync=%s) at %s:%s, data in %s",
            t.embedded.mode,
            t.embedded.sync,
            host,
            port,
            t.embedded.data_dir,
        )
    else:
        assert t.host is not None and t.port is not None
        host, port = t.host, t.port
        log.info("TStorage: remote at %s:%s%s", host, port, " (TLS)" if t.tls else "")
    try:
        link = TStorageLink(LinkSettings.for_config(t, host, port))
        if t.journal is not None:
            link.write_behind(t.journal)
            log.info("writes acknowledged from the journal in %s", t.journal.dir)
        storage = GatewayStorage(link, config)
        storage.load()
        authenticate, authorize, audience = policy_hooks(config.auth)
        options: dict[str, Any] = {}
        if config.server.message_queue is not None:
            import socketio

            # refresh events from clients reach the clients of every gateway
            options["client_manager"] = socketio.RedisManager(config.server.message_queue)
        app = create_app(
            storage,
            max_http_buffer_size=config.server.max_message_size,
            cors_allowed_origins=config.server.allowed_origins or None,
            authenticate=authenticate,
            authorize=authorize,
            audience=audience,
            **_limits(config.server),
            **options,
        )
        from gateway.timeseries.events import mount as mount_timeseries

        reads = mount_timeseries(app, storage, authorize)
        from gateway.dashboard import mount as mount_dashboard  # the page at / and its listing

        mount_dashboard(app, reads, authorize)
        from gateway.health import mount as mount_health

        mount_health(app, link, embedded, storage.series.memory)
    except BaseException:
        if embedded is not None:
            embedded.stop()
        raise
    if embedded is not None:
        embedded.supervise()  # a child that dies is restarted
    if config.server.message_queue is not None:
        log.info("message queue: %s", _redacted(config.server.message_queue))
    log.info(
        "%d map rule(s); unmapped keys: %s (cid %d); auth %s",
        len(config.map), config.generic.unmapped, config.generic.cid,
        "on" if config.auth.enabled else "off",
    )  # fmt: skip
    return Gateway(config, storage, app, embedded, reads)


def _limits(server: ServerConfig) -> dict[str, Any]:
    """The znsocket server's bounds on one client, from ``[server]``."""
    from znsocket.protocol.chunks import ChunkLimits

    return {
        "max_attachments": server.max_attachments,
        "max_attachment_bytes": server.max_attachment_bytes,
        "max_decoded_bytes": server.max_decoded_size,
        "send_buffer_bytes": server.send_buffer_per_connection,
        "send_timeout_s": server.send_timeout,
        "chunk_limits": ChunkLimits(
            max_buffered_bytes_per_owner=server.chunk_buffer_per_connection,
            max_buffered_bytes=server.chunk_buffer_total,
            assembly_timeout_s=server.chunk_timeout,
        ),
    }


def run(config: GatewayConfig) -> None:
    """Serve until SIGTERM/SIGINT; prints ``listening on HOST:PORT`` once ready."""
    from znsocket.server import serve

    gateway = build(config)
    gateway.follow()
    log.info(
        "websocket (socket.io, namespace /znsocket) on %s:%s",
        config.server.host,
        config.server.port,
    )
    serve(
        gateway.app.wsgi_app,
        config.server.host,
        config.server.port,
        on_shutdown=gateway.close,
        max_connections=config.server.max_connections,
        request_timeout_s=config.server.request_timeout,
    )


def _redacted(url: str) -> str:
    """A URL without its password, for the log."""
    return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", url)

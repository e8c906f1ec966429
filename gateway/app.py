"""Build and run the gateway: embedded TStorage, storage, znsocket server.

The socket.io wiring is znsocket's (:func:`znsocket.server.create_app` and
:func:`znsocket.server.serve`); the gateway only supplies the storage, the options from the
configuration and the authentication hooks.
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
from typing import TYPE_CHECKING, Any

from gateway.auth import policy_hooks
from gateway.config import EmbeddedConfig, GatewayConfig
from gateway.storage import GatewayStorage, LinkSettings, TStorageLink

if TYPE_CHECKING:
    from gateway.timeseries.reads import TimeSeriesReads

log = logging.getLogger("gateway")

#: how long a start waits for a previous server to release the data directory
_BUSY_RETRY_S = 5.0
_LISTENING = re.compile(r"listening on (\S+?):(\d+)")


@dataclass
class EmbeddedTStorage:
    """Our TStorage server started for the gateway, in a thread or a child process."""

    config: EmbeddedConfig
    host: str = ""
    port: int = 0
    _stop: list[Callable[[], None]] = field(default_factory=list)

    def start(self, busy_wait_s: float = _BUSY_RETRY_S) -> EmbeddedTStorage:
        """Start the server; returns once it accepts connections.

        Args:
            busy_wait_s: in process mode, how long to wait for the data directory when
                another server holds it (the server of a gateway that was just killed lets
                go within about 0.1 s); 0 refuses at once.

        Raises:
            DataDirInUse: another server holds the data directory.
        """
        c = self.config
        c.data_dir.mkdir(parents=True, exist_ok=True)
        from tstorage_server.limits import Limits

        limits = Limits(**c.limits.given())
        if c.mode == "thread":
            from tstorage_server import EmbeddedServer

            server = EmbeddedServer(c.data_dir, c.host, c.port, limits=limits).start()
            self.host, self.port = server.host, server.port
            self._stop.append(server.stop)
            return self
        # imported here: a gateway on a remote TStorage never loads the server
        from tstorage_server.store import EXIT_DATA_DIR_IN_USE, DataDirInUse

        argv = [sys.executable, "-m", "tstorage_server", "--data-dir", str(c.data_dir),
                "--host", c.host, "--port", str(c.port), "--exit-with-parent",
                *limits.argv()]  # fmt: skip
        deadline = time.monotonic() + busy_wait_s
        while True:
            proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
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
        threading.Thread(target=lambda: [None for _ in proc.stdout or ()], daemon=True).start()

        def stop() -> None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()

        self._stop.append(stop)
        return self

    def stop(self) -> None:
        """Stop the server (safe to call twice)."""
        while self._stop:
            self._stop.pop()()


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
        clients as upstream clients announce their own writes, one event per key and poll.

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
            app.sio.emit(
                "refresh",
                {"target": target, "data": data},
                namespace=app.namespace,
                ignore_queue=local,
            )

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
            "TStorage: embedded (%s) at %s:%s, data in %s",
            t.embedded.mode,
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
        storage = GatewayStorage(link, config)
        storage.load()
        authenticate, authorize = policy_hooks(config.auth)
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
            **options,
        )
        from gateway.timeseries.events import mount as mount_timeseries

        reads = mount_timeseries(app, storage, authorize)
        from gateway.dashboard import mount as mount_dashboard  # the page at / and its listing

        mount_dashboard(app, reads, authorize)
    except BaseException:
        if embedded is not None:
            embedded.stop()
        raise
    if config.server.message_queue is not None:
        log.info("message queue: %s", _redacted(config.server.message_queue))
    log.info(
        "%d map rule(s); unmapped keys: %s (cid %d); auth %s",
        len(config.map), config.generic.unmapped, config.generic.cid,
        "on" if config.auth.enabled else "off",
    )  # fmt: skip
    return Gateway(config, storage, app, embedded, reads)


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
    serve(gateway.app.wsgi_app, config.server.host, config.server.port, on_shutdown=gateway.close)


def _redacted(url: str) -> str:
    """A URL without its password, for the log."""
    return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", url)

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
from typing import Any

from gateway.auth import policy_hooks
from gateway.config import EmbeddedConfig, GatewayConfig
from gateway.storage import GatewayStorage, LinkSettings, TStorageLink

log = logging.getLogger("gateway")

_LISTENING = re.compile(r"listening on (\S+?):(\d+)")


@dataclass
class EmbeddedTStorage:
    """Our TStorage server started for the gateway, in a thread or a child process."""

    config: EmbeddedConfig
    host: str = ""
    port: int = 0
    _stop: list[Callable[[], None]] = field(default_factory=list)

    def start(self) -> EmbeddedTStorage:
        """Start the server; returns once it accepts connections."""
        c = self.config
        c.data_dir.mkdir(parents=True, exist_ok=True)
        if c.mode == "thread":
            from tstorage_server import EmbeddedServer

            server = EmbeddedServer(c.data_dir, c.host, c.port).start()
            self.host, self.port = server.host, server.port
            self._stop.append(server.stop)
            return self
        argv = [sys.executable, "-m", "tstorage_server", "--data-dir", str(c.data_dir),
                "--host", c.host, "--port", str(c.port)]  # fmt: skip
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            m = _LISTENING.search(line)
            if m:
                self.host, self.port = c.host, int(m.group(2))
                break
        else:
            raise RuntimeError(f"embedded TStorage server exited with status {proc.wait()}")
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

    def follow(self, interval: float = 0.5) -> None:
        """Emit ``refresh`` events for records written by others (a background green thread).

        Every ``interval`` seconds the indexes read in the last minute and the generic keys
        catch up with TStorage; whatever arrived from another gateway or program is
        announced to the websocket clients as upstream clients announce their own writes.
        """
        self.storage.follow(self.app.emit_refresh)

        def loop() -> None:
            while True:
                time.sleep(interval)
                try:
                    self.storage.poll()
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
        log.info("TStorage: remote at %s:%s", host, port)
    try:
        link = TStorageLink(
            LinkSettings(
                host, port, t.timeout, t.memory_limit, t.connections, t.reconnect_max_delay
            )
        )
        storage = GatewayStorage(link, config)
        storage.load()
        authenticate, authorize = policy_hooks(config.auth)
        app = create_app(
            storage,
            max_http_buffer_size=config.server.max_message_size,
            cors_allowed_origins=config.server.allowed_origins or None,
            authenticate=authenticate,
            authorize=authorize,
        )
        from gateway.dashboard import mount as mount_dashboard  # the page at / and its events

        mount_dashboard(app, storage, authorize)
    except BaseException:
        if embedded is not None:
            embedded.stop()
        raise
    log.info(
        "%d map rule(s); unmapped keys: %s (cid %d); auth %s",
        len(config.map), config.generic.unmapped, config.generic.cid,
        "on" if config.auth.enabled else "off",
    )  # fmt: skip
    return Gateway(config, storage, app, embedded)


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

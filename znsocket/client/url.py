"""Splitting a server address into the Socket.IO base URL and endpoint path."""

from __future__ import annotations

from urllib.parse import urlparse


def parse_url(address: str) -> tuple[str, str | None]:
    """Split ``address`` into ``scheme://netloc`` and the path without outer slashes.

    ``https://example.com/a/b`` → ``("https://example.com", "a/b")``; the Socket.IO
    endpoint is then ``/a/b/socket.io/``. A bare host yields ``None`` as the path.

    Args:
        address: An ``http://`` or ``https://`` URL, optionally with a path.

    Returns:
        The base URL and the path (``None`` when there is none).
    """
    parsed = urlparse(address)
    path = parsed.path.strip("/") if parsed.path else ""
    return f"{parsed.scheme}://{parsed.netloc}", path or None


def from_znsocket_url(url: str) -> str:
    """Rewrite every ``znsocket://`` in ``url`` to ``http://`` (upstream's rule)."""
    return url.replace("znsocket://", "http://")

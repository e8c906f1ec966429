"""Server addresses: ``znsocket://`` rewriting and Socket.IO endpoint paths."""

from __future__ import annotations

from znsocket.client.url import from_znsocket_url, parse_url


def test_parse_url_without_and_with_path() -> None:
    assert parse_url("http://127.0.0.1:5000") == ("http://127.0.0.1:5000", None)
    assert parse_url("http://127.0.0.1:5000/") == ("http://127.0.0.1:5000", None)
    assert parse_url("https://example.com/path/to/resource/") == (
        "https://example.com",
        "path/to/resource",
    )


def test_znsocket_scheme_means_http() -> None:
    assert from_znsocket_url("znsocket://127.0.0.1:5000") == "http://127.0.0.1:5000"

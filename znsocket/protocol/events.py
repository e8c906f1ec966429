"""Event names of the znsocket protocol (spec Appendix A).

Every other event name in the namespace is a storage command (``[args, kwargs]`` payload).
"""

from __future__ import annotations

DEFAULT_NAMESPACE = "/znsocket"


class Event:
    """Names of the non-command events."""

    SERVER_CONFIG = "server_config"
    PIPELINE = "pipeline"
    COMPRESSED_MESSAGE = "compressed_message"
    CHUNKED_MESSAGE = "chunked_message"
    GET_CHUNKED_RESULT = "get_chunked_result"
    REFRESH = "refresh"
    CHECK_ADAPTER = "check_adapter"
    ADAPTER_EXISTS = "adapter_exists"
    REGISTER_ADAPTER = "register_adapter"
    ADAPTER_GET = "adapter:get"

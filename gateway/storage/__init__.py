"""The TStorage-backed implementation of the znsocket storage command interface."""

from gateway.storage.gateway_storage import GatewayStorage
from gateway.storage.link import LinkSettings, TStorageLink

__all__ = ["GatewayStorage", "LinkSettings", "TStorageLink"]

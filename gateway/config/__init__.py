"""The gateway configuration file: a pydantic model, the only reader of the TOML.

Everything else in the gateway receives typed objects from here, never dicts or
environment variables. :func:`load_config` collects *every* problem of a file (schema
errors from pydantic plus cross-section checks) with its TOML path, line and a hint, and
raises :class:`~gateway.errors.ConfigError` carrying them all. Field-by-field documentation
lives in ``config/README.md``.

One module per idea, every name importable from here: :mod:`~gateway.config.schema` (the
models), :mod:`~gateway.config.checks` (checks across sections),
:mod:`~gateway.config.report` (problems located by TOML path and line) and
:mod:`~gateway.config.load` (reading a file).
"""

from gateway.config.checks import cross_check
from gateway.config.load import check_config, load_config
from gateway.config.report import TomlLocator
from gateway.config.schema import (
    DEFAULT_GENERIC_CID,
    AuthConfig,
    EmbeddedConfig,
    EmbeddedLimits,
    GatewayConfig,
    GenericConfig,
    MapRule,
    ServerConfig,
    TlsConfig,
    TokenConfig,
    TStorageConfig,
)

__all__ = [
    "DEFAULT_GENERIC_CID",
    "AuthConfig",
    "EmbeddedConfig",
    "EmbeddedLimits",
    "GatewayConfig",
    "GenericConfig",
    "MapRule",
    "ServerConfig",
    "TStorageConfig",
    "TlsConfig",
    "TokenConfig",
    "TomlLocator",
    "check_config",
    "cross_check",
    "load_config",
]

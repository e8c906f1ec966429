"""A znsocket server whose storage is TStorage, configured by one TOML file.

The package is split by concern: ``config`` reads and validates the file, ``keymap`` maps
znsocket keys onto TStorage key ranges, ``codecs`` turns record payloads into JSON values
and back, ``elements`` shapes records into List/Dict elements, ``storage`` implements the
znsocket storage command interface over TStorage, ``auth`` checks tokens and key grants,
``transfer`` imports and exports series (CSV) and generic keys (JSON Lines),
``timeseries`` offers time-window reads, resume and the :class:`TimeSeries` client proxy,
``embedded`` starts and supervises the embedded TStorage server, ``cooperative`` gives
other clients their turn inside long loops, ``health`` answers ``GET /health``, and ``app`` wires it all into a server (``gateway run``; see
``gateway/__main__.py`` for the command line).
"""

from gateway.errors import (
    CodecError,
    ConfigError,
    GatewayError,
    KeyMappingError,
    TStorageOutcomeUnknown,
    TStorageUnavailable,
)
from gateway.timeseries import TimeSeries

__all__ = [
    "CodecError",
    "ConfigError",
    "GatewayError",
    "KeyMappingError",
    "TStorageOutcomeUnknown",
    "TStorageUnavailable",
    "TimeSeries",
]

"""The configuration's schema: one strict pydantic model per TOML table.

Each field's meaning is documented in ``config/README.md``; the checks that span
sections are in :mod:`gateway.config.checks`.
"""

from __future__ import annotations

import os
import re
import ssl
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from gateway import keymap
from gateway.codecs import PayloadCodec, parse_codec
from gateway.config.checks import cross_check
from gateway.elements import ElementShape
from znsocket.hosts import is_loopback_host

DEFAULT_GENERIC_CID = 2_147_483_000
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")


# A TOML file is typed: `port = "5000"` or `enabled = "yes"` is a mistake to report, not to
# coerce. Paths are the exception: TOML has no path type, so they accept strings.
_LaxPath = Annotated[Path, Field(strict=False)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ServerConfig(_Section):
    """``[server]``: where the websocket server listens and what it accepts."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 5000
    max_message_size: Annotated[int, Field(ge=1024)] = 10 * 1024 * 1024
    allowed_origins: list[str] = Field(default_factory=list)
    follow_interval: Annotated[float, Field(ge=0.01, le=60)] = 0.25
    watch_window: Annotated[float, Field(ge=1, le=86_400)] = 60.0
    #: series one ``ts:mrange`` request reads at most
    max_mrange_series: Annotated[int, Field(ge=1, le=10_000)] = 100
    message_queue: str | None = None
    # limits on what one client can make the server hold (docs/deployment.md, "Limits")
    max_connections: Annotated[int, Field(ge=1)] = 10_000
    request_timeout: Annotated[float, Field(gt=0)] = 60.0
    max_attachments: Annotated[int, Field(ge=1)] = 1000
    max_attachment_bytes: Annotated[int, Field(ge=1)] | None = None
    max_decoded_size: Annotated[int, Field(ge=1024)] = 256 * 1024 * 1024
    chunk_buffer_per_connection: Annotated[int, Field(ge=1024)] = 256 * 1024 * 1024
    chunk_buffer_total: Annotated[int, Field(ge=1024)] = 1024 * 1024 * 1024
    chunk_timeout: Annotated[float, Field(gt=0)] = 600.0
    send_buffer_per_connection: Annotated[int, Field(ge=1024)] = 64 * 1024 * 1024
    send_timeout: Annotated[float, Field(gt=0)] = 30.0

    @model_validator(mode="after")
    def _chunk_buffers(self) -> ServerConfig:
        if self.chunk_buffer_per_connection > self.chunk_buffer_total:
            raise ValueError(
                f"chunk_buffer_per_connection ({self.chunk_buffer_per_connection}) exceeds "
                f"chunk_buffer_total ({self.chunk_buffer_total}) (hint: one connection's share "
                "must leave room for the others)"
            )
        return self

    @field_validator("message_queue")
    @classmethod
    def _redis_url(cls, url: str | None) -> str | None:
        if url is not None and not re.match(r"(rediss?|unix)://\S+$", url):
            raise ValueError(
                f"message_queue must be a Redis URL, got {url!r} "
                '(hint: `message_queue = "redis://127.0.0.1:6379/0"`, or remove it for one gateway)'
            )
        return url

    @property
    def is_loopback(self) -> bool:
        """True when the server binds a loopback address only."""
        return is_loopback_host(self.host)


class EmbeddedLimits(_Section):
    """``[tstorage.embedded.limits]``: what a client may make the embedded server hold
    (``docs/tstorage-server.md``); a field left out keeps the server's default."""

    max_request_bytes: Annotated[int, Field(gt=0)] | None = None
    max_buffered_bytes: Annotated[int, Field(gt=0)] | None = None
    max_connections: Annotated[int, Field(gt=0)] | None = None
    request_timeout: Annotated[float, Field(gt=0)] | None = None
    idle_timeout: Annotated[float, Field(gt=0)] | None = None
    write_stall_timeout: Annotated[float, Field(gt=0)] | None = None

    def given(self) -> dict[str, Any]:
        """The fields set, as keyword arguments of ``tstorage_server.Limits``."""
        return self.model_dump(exclude_none=True)


class EmbeddedConfig(_Section):
    """``[tstorage.embedded]``: run our TStorage server for the gateway, as a child process.

    The gateway supervises the child: when it exits unexpectedly it is restarted on the
    same port after ``restart_delay`` seconds, the delay doubling with each restart up to
    ``restart_max_delay`` (back to ``restart_delay`` once a child stayed up that long).
    """

    data_dir: _LaxPath
    #: the only mode left; accepted so that files which name it keep loading
    mode: Literal["process"] = "process"
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 0
    # Durability (tstorage_server.store.lmdb): "commit" fsyncs before a write is
    # acknowledged; "interval" acknowledges once the OS has it and fsyncs every
    # sync_interval seconds (kill -9 loses nothing; a power loss at most the interval).
    sync: Literal["commit", "interval"] = "commit"
    sync_interval: Annotated[float, Field(gt=0, le=1)] = 1.0
    restart_delay: Annotated[float, Field(ge=0, le=3600)] = 0.2
    restart_max_delay: Annotated[float, Field(gt=0, le=3600)] = 10.0

    limits: EmbeddedLimits = Field(default_factory=EmbeddedLimits)

    @field_validator("mode", mode="before")
    @classmethod
    def _thread_mode_removed(cls, mode: Any) -> Any:
        if mode == "thread":
            raise ValueError(
                'mode = "thread" (the server inside the gateway process) was removed: the '
                "embedded TStorage always runs as a child process of the gateway "
                '(hint: delete the mode line, or write mode = "process")'
            )
        return mode

    @field_validator("host")
    @classmethod
    def _loopback_only(cls, host: str) -> str:
        # The TStorage protocol has no authentication, and the embedded server has no TLS:
        # off loopback, whoever reaches the port could read and overwrite every record.
        if not is_loopback_host(host):
            raise ValueError(
                f"the embedded TStorage would listen on {host!r}, off loopback, where anyone "
                "who reaches the port could read and write every record (the TStorage "
                "protocol has no authentication and the embedded server no TLS) "
                '(hint: keep host = "127.0.0.1"; to share TStorage over the network run '
                "tstorage-server with --tls-cert, --tls-key and --tls-client-ca, and give "
                "the gateways its host/port and [tstorage.tls] with cert_file and key_file)"
            )
        return host


class TlsConfig(_Section):
    """``[tstorage.tls]``: TLS to a remote TStorage (files relative to the config file)."""

    ca_file: _LaxPath | None = None
    cert_file: _LaxPath | None = None
    key_file: _LaxPath | None = None

    @model_validator(mode="after")
    def _cert_and_key(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError(
                "cert_file and key_file go together "
                "(hint: give both for a client certificate, or neither)"
            )
        return self

    def resolved(self, base: Path) -> TlsConfig:
        """The same settings with relative paths taken from ``base``."""

        def fix(path: Path | None) -> Path | None:
            return None if path is None or path.is_absolute() else (base / path).resolve()

        update = {
            name: fixed
            for name in ("ca_file", "cert_file", "key_file")
            if (fixed := fix(getattr(self, name))) is not None
        }
        return self.model_copy(update=update)

    def context(self) -> ssl.SSLContext:
        """A client TLS context: the server is verified (against ``ca_file`` or the system's
        CAs) and, with ``cert_file``/``key_file``, this gateway presents its certificate.

        Raises:
            ValueError: a file cannot be read or is not PEM of the right kind.
        """
        try:
            ctx = ssl.create_default_context(
                cafile=str(self.ca_file) if self.ca_file is not None else None
            )
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot load ca_file {self.ca_file}: {exc}") from None
        if self.cert_file is not None:
            try:
                ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(
                    f"cannot load cert_file {self.cert_file} / key_file {self.key_file}: {exc}"
                ) from None
        return ctx


class JournalConfig(_Section):
    """``[tstorage.journal]``: acknowledge writes from a journal, store them moments later.

    A write is acknowledged once it is in the journal (written to the OS, not fsynced) and
    stored in TStorage in the background (``gateway.storage.write_behind``): one writer
    waits for no TStorage round trip. Reads through this gateway wait until what it
    acknowledged is stored, so they always see it. ``kill -9`` of the gateway or of TStorage
    loses nothing (the journal is replayed at the next start); a power loss loses at most
    the last ``sync_interval`` seconds, as ``sync = "interval"`` does.
    """

    #: the journal's folder (relative: to the config file's folder); one gateway per folder
    dir: _LaxPath
    #: acknowledged writes not yet in TStorage, at most (then writers wait, and are refused
    #: with "not stored" after [tstorage] timeout)
    max_bytes: Annotated[int, Field(ge=1 << 20)] = 64 << 20
    #: a write larger than this (payloads plus 32 bytes a record) is not journalled but
    #: stored at once; TStorage must take a request of this size
    max_write_bytes: Annotated[int, Field(ge=4096, le=16 << 20)] = 1 << 20
    #: seconds the background writer waits for more writes to join one PUT (cut short
    #: when a request of this gateway must see them)
    linger: Annotated[float, Field(ge=0, le=0.1)] = 0.01
    #: the journal is fsynced at least this often (seconds)
    sync_interval: Annotated[float, Field(gt=0, le=1)] = 1.0


class TStorageConfig(_Section):
    """``[tstorage]``: the TStorage the gateway stores in (embedded or remote)."""

    embedded: EmbeddedConfig | None = None
    tls: TlsConfig | None = None
    journal: JournalConfig | None = None
    host: str | None = None
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    timeout: Annotated[float, Field(gt=0)] = 5.0
    memory_limit: Annotated[int, Field(ge=4096)] = 64 * 1024 * 1024
    connections: Annotated[int, Field(ge=1, le=256)] = 4
    reconnect_max_delay: Annotated[float, Field(gt=0)] = 5.0
    max_staleness: Annotated[float, Field(ge=0, le=60)] = 0.1
    index_budget: Annotated[int, Field(ge=1000)] | None = None
    index_budget_bytes: Annotated[int, Field(ge=1 << 16)] = 128 * 1024 * 1024
    index_chunk: Annotated[int, Field(ge=2, le=1_000_000)] = 4096
    index_persist: bool = True
    index_cid: Annotated[int, Field(ge=0, le=keymap.CID_RANGE[1])] = 2_147_483_001
    index_save: Annotated[float, Field(ge=0)] = 30.0
    build_wait: Annotated[float, Field(ge=0)] = 10.0
    value_cache: Annotated[int, Field(ge=0)] = 200_000

    @model_validator(mode="after")
    def _one_target(self) -> TStorageConfig:
        remote = self.host is not None or self.port is not None
        if self.embedded is not None and remote:
            raise ValueError(
                "give either [tstorage.embedded] or host/port, not both "
                "(hint: remove host/port to use the embedded server)"
            )
        if self.embedded is not None and self.tls is not None:
            raise ValueError(
                "[tstorage.tls] is for a remote TStorage; the embedded server listens on "
                "loopback without TLS (hint: remove [tstorage.tls], or use host/port)"
            )
        limit = self.embedded.limits.max_request_bytes if self.embedded is not None else None
        if (
            self.journal is not None
            and limit is not None
            and limit < 4 * self.journal.max_write_bytes
        ):
            raise ValueError(
                f"[tstorage.embedded.limits] max_request_bytes = {limit} is below 4 x "
                f"[tstorage.journal] max_write_bytes ({self.journal.max_write_bytes}): a "
                "journalled write it refuses could never be stored (hint: lower max_write_bytes "
                "or raise max_request_bytes)"
            )
        if (
            self.journal is not None
            and self.embedded is not None
            and self.embedded.sync == "commit"
        ):
            raise ValueError(
                "[tstorage.journal] acknowledges writes before they are fsynced, while "
                '[tstorage.embedded] sync = "commit" promises that every acknowledged write '
                'survives a power loss (hint: set sync = "interval", or remove '
                "[tstorage.journal])"
            )
        if self.embedded is None and (self.host is None or self.port is None):
            raise ValueError(
                "needs [tstorage.embedded] with data_dir, or both host and port of a remote "
                'TStorage (hint: add `[tstorage.embedded]` and `data_dir = "data"`)'
            )
        return self


class TokenConfig(_Section):
    """``[[auth.tokens]]``: one bearer token, read from an environment variable."""

    name: Annotated[str, Field(min_length=1)]
    env: str
    access: Literal["read", "read-write"] = "read"
    keys: list[str] = Field(default_factory=lambda: ["*"])

    @model_validator(mode="after")
    def _env_is_a_name(self) -> TokenConfig:
        if not _ENV_NAME.fullmatch(self.env):
            raise ValueError(
                "env must name an environment variable (A-Z, 0-9, _), not hold the secret "
                "(the value is not shown here in case it is one) "
                f'(hint: `env = "GATEWAY_TOKEN_{self.name.upper()}"`)'
            )
        return self

    def secret(self) -> str | None:
        """The token's value from the environment, or ``None`` when unset or empty."""
        return os.environ.get(self.env) or None


class AuthConfig(_Section):
    """``[auth]``: token authentication and per-key authorisation."""

    enabled: bool = False
    tokens: list[TokenConfig] = Field(default_factory=list)


class GenericConfig(_Section):
    """``[generic]``: where keys that no map rule matches are kept."""

    unmapped: Literal["store", "reject"] = "store"
    cid: Annotated[int, Field(ge=0, le=keymap.CID_RANGE[1])] = DEFAULT_GENERIC_CID
    #: log bytes tolerated beyond twice the live data before checkpoints are written
    checkpoint_min_bytes: Annotated[int, Field(ge=0)] = 8 * 1024 * 1024
    #: values of at least this many characters stay in TStorage, not in memory (0: never)
    large_value_bytes: Annotated[int, Field(ge=0)] = 16 * 1024
    #: characters of such values kept in memory by an LRU cache
    value_cache_bytes: Annotated[int, Field(ge=0)] = 256 * 1024 * 1024


class MapRule(_Section):
    """``[[map]]``: one znsocket key pattern mapped onto TStorage series."""

    pattern: str
    kind: Literal["list", "dict"] = "list"
    cid: Annotated[int, Field(ge=keymap.CID_RANGE[0], le=keymap.CID_RANGE[1])]
    mid: int | str
    moid: int | str | None = None
    fields: dict[str, int] | None = None
    codec: str = "json"
    element: Literal["value", "timestamped"] = "value"
    time: Literal["unix_ns", "tstorage_ns", "unix_s"] = "unix_ns"
    read_only: bool = False
    allow_corrections: bool = False
    # What the values mean, for people: shown on the dashboard's axes, legend and latest value.
    unit: Annotated[str, Field(max_length=32)] | None = None
    label: Annotated[str, Field(max_length=80)] | None = None

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, v: str) -> str:
        try:
            keymap.compile_pattern(v)
        except ValueError as exc:
            raise ValueError(
                f'{exc} (hint: write e.g. "meters/{{mid:int}}/{{moid:int}}")'
            ) from None
        return v

    @field_validator("codec")
    @classmethod
    def _codec_parses(cls, v: str) -> str:
        try:
            parse_codec(v)
        except ValueError as exc:
            raise ValueError(f'{exc} (hint: e.g. "struct:<d", "json", "bytes", "unit")') from None
        return v

    @model_validator(mode="after")
    def _coherent(self) -> MapRule:
        pattern = keymap.compile_pattern(self.pattern)
        used: list[str] = []
        for what, spec, bounds in (
            ("mid", self.mid, keymap.MID_RANGE),
            ("moid", self.moid, keymap.MOID_RANGE),
        ):
            if spec is None:
                continue
            if isinstance(spec, int):
                if not bounds[0] <= spec <= bounds[1]:
                    raise ValueError(f"{what} {spec} is outside [{bounds[0]}, {bounds[1]}]")
                continue
            name = _placeholder_ref(spec)
            if name is None or name not in pattern.names:
                raise ValueError(
                    f"{what} = {spec!r} must be an integer or a placeholder of the pattern "
                    f'written like "{{{pattern.names[0] if pattern.names else what}}}"'
                )
            used.append(name)
        unused = [n for n in pattern.names if n not in used]
        if unused:
            raise ValueError(
                f"placeholder(s) {', '.join(unused)} feed neither mid nor moid, so two keys "
                'would name one series (hint: set mid/moid = "{name}" or drop the placeholder)'
            )
        if self.kind == "list":
            if self.moid is None:
                raise ValueError('a list rule needs moid (an integer or "{placeholder}")')
            if self.fields is not None:
                raise ValueError('fields only apply to dict rules (hint: set kind = "dict")')
        else:
            if self.moid is not None:
                raise ValueError(
                    "a dict rule's fields are moids, so it takes no moid "
                    "(hint: remove moid, or use fields = { name = moid })"
                )
            if self.fields is not None:
                if not self.fields:
                    raise ValueError("fields is empty (hint: remove it to name fields by moid)")
                moids = list(self.fields.values())
                dup = sorted({m for m in moids if moids.count(m) > 1})
                if dup:
                    raise ValueError(f"fields give moid(s) {dup} more than one name")
                for name, m in self.fields.items():
                    if not keymap.MOID_RANGE[0] <= m <= keymap.MOID_RANGE[1]:
                        raise ValueError(f"field {name!r}: moid {m} is outside the int32 range")
        return self

    def payload_codec(self) -> PayloadCodec:
        """The rule's payload codec."""
        return parse_codec(self.codec)

    def to_rule(self, index: int) -> keymap.Rule:
        """This rule as keys resolve to it: what the key map matches and the views need."""

        def comp(spec: int | str | None) -> int | str | None:
            return spec if spec is None or isinstance(spec, int) else _placeholder_ref(spec)

        mid = comp(self.mid)
        assert mid is not None
        return keymap.Rule(
            index=index,
            kind=self.kind,
            pattern=keymap.compile_pattern(self.pattern),
            cid=self.cid,
            mid=mid,
            moid=comp(self.moid),
            fields=tuple(self.fields.items()) if self.fields is not None else None,
            shape=ElementShape(self.payload_codec(), self.element, self.time),
            read_only=self.read_only,
            allow_corrections=self.allow_corrections,
            unit=self.unit,
            label=self.label,
        )

    def owned_ranges(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """Inclusive (mid, moid) intervals of the series this rule can name."""
        lo, hi = self.to_rule(0).key_range()  # the box does not depend on the position
        return (lo[1], hi[1] - 1), (lo[2], hi[2] - 1)


def _placeholder_ref(spec: str) -> str | None:
    m = re.fullmatch(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", spec.strip())
    return m.group(1) if m else None


class GatewayConfig(_Section):
    """The whole configuration file."""

    server: ServerConfig = Field(default_factory=ServerConfig)
    tstorage: TStorageConfig
    auth: AuthConfig = Field(default_factory=AuthConfig)
    generic: GenericConfig = Field(default_factory=GenericConfig)
    map: list[MapRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> GatewayConfig:
        issues = cross_check(self.server, self.auth, self.generic, dict(enumerate(self.map)))
        sink = info.context.get("issues") if isinstance(info.context, dict) else None
        if sink is not None:
            sink.extend(issues)
        elif issues:
            raise ValueError("; ".join(f"{i.location}: {i.message}" for i in issues))
        return self

    def keymap(self) -> keymap.KeyMap:
        """The key map built from the ``[[map]]`` rules, in file order."""
        return keymap.KeyMap([r.to_rule(i) for i, r in enumerate(self.map)])

"""The gateway configuration file: a pydantic model, the only reader of the TOML.

Everything else in the gateway receives typed objects from here, never dicts or
environment variables. :func:`load_config` collects *every* problem of a file (schema
errors from pydantic plus cross-section checks) with its TOML path, line and a hint, and
raises :class:`~gateway.errors.ConfigError` carrying them all. Field-by-field documentation
lives in ``config/README.md``.
"""

from __future__ import annotations

import os
import re
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gateway import keymap
from gateway.codecs import PayloadCodec, parse_codec
from gateway.errors import ConfigError, ConfigIssue
from znsocket.hosts import is_loopback_host

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

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
    """``[tstorage.embedded]``: run our TStorage server for the gateway.

    In process mode the gateway supervises the child: when it exits unexpectedly it is
    restarted on the same port after ``restart_delay`` seconds, the delay doubling with
    each restart up to ``restart_max_delay`` (back to ``restart_delay`` once a child stayed
    up that long).
    """

    data_dir: _LaxPath
    mode: Literal["thread", "process"] = "process"
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


class TStorageConfig(_Section):
    """``[tstorage]``: the TStorage the gateway stores in (embedded or remote)."""

    embedded: EmbeddedConfig | None = None
    tls: TlsConfig | None = None
    host: str | None = None
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    timeout: Annotated[float, Field(gt=0)] = 5.0
    memory_limit: Annotated[int, Field(ge=4096)] = 64 * 1024 * 1024
    connections: Annotated[int, Field(ge=1, le=256)] = 4
    reconnect_max_delay: Annotated[float, Field(gt=0)] = 5.0
    max_staleness: Annotated[float, Field(ge=0, le=60)] = 0.1
    index_budget: Annotated[int, Field(ge=1000)] = 10_000_000
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
        """The key map's view of this rule."""

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
        )

    def _component_range(self, spec: int | str | None, bounds: tuple[int, int]) -> tuple[int, int]:
        if isinstance(spec, int):
            return spec, spec
        return bounds

    def owned_ranges(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """Inclusive (mid, moid) intervals of the series this rule can name."""
        mids = self._component_range(self.mid, keymap.MID_RANGE)
        if self.kind == "dict" and self.fields is not None:
            values = list(self.fields.values())
            return mids, (min(values), max(values))
        return mids, self._component_range(self.moid, keymap.MOID_RANGE)


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


def cross_check(
    server: ServerConfig | None,
    auth: AuthConfig | None,
    generic: GenericConfig | None,
    rules: dict[int, MapRule],
) -> list[ConfigIssue]:
    """Checks that span sections, run on whichever sections are valid on their own."""
    issues: list[ConfigIssue] = []
    if auth is not None and server is not None and not auth.enabled and not server.is_loopback:
        issues.append(
            ConfigIssue(
                "auth.enabled",
                f"auth is off but server.host = {server.host!r} is not a loopback address",
                'set [auth] enabled = true with tokens, or bind host = "127.0.0.1"',
            )
        )
    if auth is not None:
        issues.extend(_auth_issues(auth))
    for i, rule in sorted(rules.items()):
        if generic is not None and rule.cid == generic.cid:
            issues.append(
                ConfigIssue(
                    f"map[{i}].cid",
                    f"cid {rule.cid} is reserved for unmapped keys (generic.cid)",
                    "pick another cid for the rule or move generic.cid",
                )
            )
        for j, other in sorted(rules.items()):
            if j >= i or other.kind != rule.kind or other.cid != rule.cid:
                continue
            (a_mid, a_moid), (b_mid, b_moid) = rule.owned_ranges(), other.owned_ranges()
            if _overlap(a_mid, b_mid) and _overlap(a_moid, b_moid):
                issues.append(
                    ConfigIssue(
                        f"map[{i}]",
                        f"{rule.kind} rule {rule.pattern!r} can name the same series as "
                        f"map[{j}] {other.pattern!r} (cid {rule.cid}), so a record would "
                        "belong to two keys",
                        "give the rules disjoint fixed mid/moid values or different cids",
                    )
                )
    return issues


def _auth_issues(auth: AuthConfig) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    if auth.enabled and not auth.tokens:
        issues.append(
            ConfigIssue(
                "auth.tokens",
                "auth is enabled but no token is configured",
                "add an [[auth.tokens]] table with name, env, access and keys",
            )
        )
    names = [t.name for t in auth.tokens]
    for i, t in enumerate(auth.tokens):
        if names.index(t.name) != i:
            issues.append(
                ConfigIssue(
                    f"auth.tokens[{i}].name",
                    f"token name {t.name!r} repeats",
                    "give every token its own name",
                )
            )
        if auth.enabled and t.secret() is None:
            issues.append(
                ConfigIssue(
                    f"auth.tokens[{i}].env",
                    f"environment variable {t.env} is not set; the gateway will refuse to start",
                    f"export {t.env}=<secret> before `gateway run`",
                    severity="warning",
                )
            )
    return issues


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


# ----------------------------------------------------------------------------- loading


def load_config(path: str | os.PathLike[str], *, strict: bool = True) -> GatewayConfig:
    """Read, validate and return the configuration in ``path``.

    Relative ``tstorage.embedded.data_dir`` values are resolved against the file's folder.

    Args:
        path: the TOML file.
        strict: when true (the default), warnings are reported as errors too.

    Raises:
        ConfigError: the file is unreadable or invalid; ``issues`` lists every problem.
    """
    cfg, issues = check_config(path)
    fatal = [i for i in issues if strict or i.severity == "error"]
    if cfg is None or fatal:
        raise ConfigError(str(path), issues)
    return cfg


def check_config(path: str | os.PathLike[str]) -> tuple[GatewayConfig | None, list[ConfigIssue]]:
    """Validate ``path`` and return the config (``None`` on errors) and every issue found."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        return None, [
            ConfigIssue(
                "(file)", f"cannot read: {exc.strerror or exc}", "check the path given to --config"
            )
        ]
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        return None, [
            ConfigIssue(
                "(syntax)",
                f"not valid TOML: {exc}",
                "fix the TOML syntax first",
                int(m.group(1)) if m else None,
            )
        ]
    locator = TomlLocator(text)
    issues = _validate_by_section(data, locator)
    cfg: GatewayConfig | None = None
    if not any(i.severity == "error" for i in issues):
        try:
            cfg = GatewayConfig.model_validate(data, context={"issues": []})
        except ValidationError as exc:  # pragma: no cover - sections already validated
            issues.extend(_pydantic_issues(exc, locator))
    for n, issue in enumerate(issues):
        if issue.line is None:
            issues[n] = ConfigIssue(
                issue.location,
                issue.message,
                issue.hint,
                locator.line_of(issue.location),
                issue.severity,
            )
    if cfg is not None and cfg.tstorage.embedded is not None:
        emb = cfg.tstorage.embedded
        if not emb.data_dir.is_absolute():
            emb = emb.model_copy(update={"data_dir": (file.parent / emb.data_dir).resolve()})
            cfg = cfg.model_copy(
                update={"tstorage": cfg.tstorage.model_copy(update={"embedded": emb})}
            )
    if cfg is not None and cfg.tstorage.tls is not None:
        tls = cfg.tstorage.tls.resolved(file.parent)
        cfg = cfg.model_copy(update={"tstorage": cfg.tstorage.model_copy(update={"tls": tls})})
        try:
            tls.context()
        except ValueError as exc:
            issues.append(
                ConfigIssue(
                    "tstorage.tls",
                    str(exc),
                    "give PEM files readable by the gateway (paths relative to this file)",
                    locator.line_of("tstorage.tls"),
                )
            )
    if any(i.severity == "error" for i in issues):
        cfg = None
    return cfg, issues


_SECTIONS: dict[str, type[_Section]] = {
    "server": ServerConfig,
    "tstorage": TStorageConfig,
    "auth": AuthConfig,
    "generic": GenericConfig,
}


def _validate_by_section(data: dict[str, Any], locator: TomlLocator) -> list[ConfigIssue]:
    # Each section and each rule is validated on its own so that one bad part does not
    # hide the problems of the others; cross-section checks then run on the valid parts.
    issues: list[ConfigIssue] = []
    for key in data:
        if key not in (*_SECTIONS, "map"):
            issues.append(
                ConfigIssue(
                    key, "unknown section or key", _HINTS["extra_forbidden"], locator.line_of(key)
                )
            )
    valid: dict[str, Any] = {}
    for name, model in _SECTIONS.items():
        if name not in data and name == "tstorage":
            issues.append(
                ConfigIssue(
                    "tstorage",
                    "the [tstorage] section is missing",
                    'add [tstorage.embedded] with data_dir = "data", or host and port',
                )
            )
            continue
        try:
            valid[name] = model.model_validate(data.get(name, {}))
        except ValidationError as exc:
            issues.extend(_pydantic_issues(exc, locator, (name,)))
    rules: dict[int, MapRule] = {}
    raw_rules = data.get("map", [])
    if not isinstance(raw_rules, list):
        issues.append(
            ConfigIssue(
                "map",
                "map must be an array of tables",
                "write each rule as a [[map]] table",
                locator.line_of("map"),
            )
        )
        raw_rules = []
    for i, raw in enumerate(raw_rules):
        try:
            rules[i] = MapRule.model_validate(raw)
        except ValidationError as exc:
            issues.extend(_pydantic_issues(exc, locator, ("map", i)))
    issues.extend(cross_check(valid.get("server"), valid.get("auth"), valid.get("generic"), rules))
    return issues


_HINTS: dict[str, str] = {
    "extra_forbidden": "remove it or fix its spelling; config/README.md lists every field",
    "missing": "add it; config/README.md describes it",
    "literal_error": "use one of the values listed",
    "int_parsing": "write a whole number",
    "int_type": "write a whole number without quotes or a decimal point, e.g. 5000",
    "float_parsing": "write a number",
    "float_type": "write a number without quotes, e.g. 0.5",
    "greater_than_equal": "raise the value",
    "less_than_equal": "lower the value",
    "bool_type": "write true or false, without quotes",
    "bool_parsing": "write true or false",
    "string_type": "write a quoted string",
    "list_type": 'write an array, e.g. ["a", "b"]',
    "dict_type": "write a table",
}


def _pydantic_issues(
    exc: ValidationError, locator: TomlLocator, prefix: tuple[Any, ...] = ()
) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    seen: set[tuple[str, str]] = set()
    for err in exc.errors(include_url=False):
        loc = _dotted(_strip_union_tags([*prefix, *err["loc"]]))
        msg = str(err["msg"])
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        hint = _HINTS.get(err["type"], "config/README.md describes this field and its values")
        if " (hint: " in msg:
            msg, _, rest = msg.partition(" (hint: ")
            hint = rest.removesuffix(")")
        if (loc, msg) in seen:
            continue
        seen.add((loc, msg))
        issues.append(ConfigIssue(loc or "(top level)", msg, hint, locator.line_of(loc)))
    return issues


_UNION_TAGS = frozenset({"int", "str", "float", "bool"})


def _strip_union_tags(loc: Sequence[Any]) -> list[Any]:
    # pydantic inserts union members and validator wrappers into locations
    # ("int", "constrained-int", "function-after[...]"); users know only TOML paths.
    return [
        p
        for p in loc
        if not (
            isinstance(p, str) and (p in _UNION_TAGS or p.startswith(("function-", "constrained-")))
        )
    ]


def _dotted(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


class TomlLocator:
    """Finds the line of a dotted TOML path (``map[1].codec``) in the file's text.

    A light scan of table headers and ``key =`` lines; good enough to point a user at
    the right line in hand-written files. Returns ``None`` when it cannot tell.
    """

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\" ]+?)\s*\]\]?\s*(?:#.*)?$")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+|\"[^\"]*\")\s*=")

    def __init__(self, text: str) -> None:
        self.lines: dict[str, int] = {}
        self._counts: dict[str, int] = {}
        table = ""
        for n, line in enumerate(text.splitlines(), start=1):
            h = self._HEADER.match(line)
            if h:
                parts = h.group(2).replace(" ", "").replace('"', "").split(".")
                if h.group(1) == "[[":
                    parent = self._resolve(parts[:-1])
                    base = f"{parent}.{parts[-1]}" if parent else parts[-1]
                    idx = self._counts.get(base, 0)
                    self._counts[base] = idx + 1
                    table = f"{base}[{idx}]"
                else:
                    table = self._resolve(parts)
                self.lines.setdefault(table, n)
                continue
            k = self._KEY.match(line)
            if k:
                key = k.group(1).strip('"')
                self.lines.setdefault(f"{table}.{key}" if table else key, n)

    def _resolve(self, parts: list[str]) -> str:
        # A table inside an array of tables ([map.fields] after [[map]]) belongs to the
        # array's latest element: map[2].fields.
        out = ""
        for part in parts:
            out = f"{out}.{part}" if out else part
            if out in self._counts:
                out = f"{out}[{self._counts[out] - 1}]"
        return out

    def line_of(self, location: str) -> int | None:
        """Line of ``location`` or of its nearest enclosing table; ``None`` if unknown."""
        loc = location
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            cut = max(loc.rfind("."), loc.rfind("["))
            if cut <= 0:
                break
            loc = loc[:cut]
        return None

"""The YAML config file, validated into frozen objects before anything starts.

Every rejection is a `ConfigError` whose path names the key (`integrations[2].page_after`)
and the CLI exits 2 with it: a daemon that starts with half a config would watch the
wrong things quietly. Validation runs in three passes, each naming paths the same way:
the file's shape (pydantic, unknown keys rejected), the provider of each integration
(the probe registry), and that provider's own `options` and `credentials`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from healthd.alerts.settings import AlertingSettings
from healthd.durations import Duration
from healthd.errors import ConfigError, UnknownProviderError
from healthd.metrics import DETAIL_LIMIT
from healthd.model import Integration, Thresholds
from healthd.registry import probe_class
from healthd.secrets import MASK, Secret
from healthd.store import Retention, open_store
from healthd.vault import KeyRing, VaultError

DEFAULT_LISTEN = "127.0.0.1:9477"
_T = TypeVar("_T")


def _longer_than_zero(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than 0s")
    return value


# An interval of 0 would probe without pause and a timeout of 0 would cut every run off
# before it starts: neither means anything, so a zero is rejected, never replaced by the
# default. A zero `page_after` is honoured (page as soon as the bridge is seen unreachable)
# and so is a zero `jitter` (slots start on time).
Positive = Annotated[Duration, AfterValidator(_longer_than_zero)]


def _at_least_a_day(value: timedelta) -> timedelta:
    if value < timedelta(days=1):
        raise ValueError("must be at least 1d (history is kept in hours and days)")
    return value


KeptFor = Annotated[Duration, AfterValidator(_at_least_a_day)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Defaults(_Model):
    interval: Positive = timedelta(seconds=60)
    timeout: Positive = timedelta(seconds=10)
    jitter: Duration = timedelta(seconds=5)
    failure_threshold: int = Field(3, ge=1)
    success_threshold: int = Field(2, ge=1)
    concurrency: int = Field(100, ge=1, le=10_000)


class TokenConfig(_Model):
    name: str
    token: Secret
    # `registry`: may write the registry (`healthd.api.registry`) and nothing else.
    role: Literal["admin", "tenant", "registry"] = "tenant"
    tenant: str | None = None


class JwtConfig(_Model):
    """Workspace tokens the CRM signs for its settings page (`healthd.api.workspace_tokens`).

    `key` is the HS256 shared secret, or the PEM public key for EdDSA and RS256 (a
    `file:` reference, usually). Every token must carry `exp`, this `audience` as `aud`,
    and a `tenant` claim naming the workspace it may read.
    """

    algorithm: Literal["HS256", "EdDSA", "RS256"]
    key: Secret
    audience: str = Field(min_length=1)
    issuer: str | None = None
    leeway: Duration = timedelta(seconds=30)


class ApiConfig(_Model):
    tokens: tuple[TokenConfig, ...] = ()
    jwt: JwtConfig | None = None
    metrics_require_token: bool = False
    # Integrations with per-integration series on /metrics at most (healthd.metrics).
    metrics_detail_limit: int = Field(DETAIL_LIMIT, ge=0, le=1_000_000)
    health_require_token: bool = False
    check_rate_limit: int = Field(10, ge=1, description="live checks per token per minute")
    # None: what RLIMIT_NOFILE leaves after the probes' sockets (healthd/api/listener.py).
    max_connections: int | None = Field(None, ge=1, le=1_000_000)
    read_timeout: Positive = timedelta(seconds=10)


class IntegrationSpec(_Model):
    """An integration's fields besides its id and credentials: what the config file's
    `integrations[]` entries and the registry API's bodies share, validated alike."""

    provider: str
    tenant: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    name: str = ""
    base_url: str | None = None
    page: bool = False
    interval: Positive | None = None
    timeout: Positive | None = None
    failure_threshold: int | None = Field(None, ge=1)
    success_threshold: int | None = Field(None, ge=1)
    page_after: Duration | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"must be an http:// or https:// URL, not {v!r}")
        return v


class HistorySettings(_Model):
    """How long each integration's run outcomes are kept (`healthd.store._history`): `hours`
    feeds the 24-hour and 7-day views and the latency trend, `days` the 30- and 90-day
    views and the status page's bar. Shorter than 7d and 90d leaves those views' older
    cells empty; longer keeps more than they show (about 40 bytes per bucket)."""

    hours: KeptFor = timedelta(days=7)
    days: KeptFor = timedelta(days=90)

    def retention(self) -> Retention:
        return Retention(recent_history=self.hours, history=self.days)
IntegrationId = Annotated[
    str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
]


class IntegrationConfig(IntegrationSpec):
    """One `integrations[]` entry of the file: credentials as `env:`/`file:` references."""

    id: IntegrationId
    credentials: dict[str, Secret] = Field(default_factory=dict)


def _literal_secret(value: object) -> Secret:
    # Never echo the value: it is a credential.
    if not isinstance(value, str) or not value or len(value) > MAX_CREDENTIAL:
        raise PydanticCustomError(
            "credential", f"must be a string of 1 to {MAX_CREDENTIAL} characters"
        )
    return Secret(value)


MAX_CREDENTIAL = 8192
LiteralSecret = Annotated[
    Secret,
    PlainValidator(_literal_secret),
    PlainSerializer(lambda _s: MASK, return_type=str),
    WithJsonSchema(
        {"type": "string", "minLength": 1, "maxLength": MAX_CREDENTIAL, "writeOnly": True}
    ),
]


class IntegrationRequest(IntegrationSpec):
    """A registry API body (`PUT /api/v1/integrations/{id}`): the file's fields, with the
    credentials themselves, since the CRM holds them. No `credentials` keeps the ones set."""

    id: IntegrationId | None = None
    credentials: dict[str, LiteralSecret] | None = None


class RegistryConfig(_Model):
    """The registry API's key ring: `keys[0]` encrypts, every key decrypts (`healthd.vault`).

    Each key is a reference (`env:NAME`, `file:/path`) to 32 random bytes in base64.
    """

    keys: tuple[Secret, ...] = ()


class FileConfig(_Model):
    listen: str = DEFAULT_LISTEN
    store: str = "sqlite:///healthd.db"
    defaults: Defaults = Defaults()
    alerting: AlertingSettings = AlertingSettings()
    api: ApiConfig = ApiConfig()
    history: HistorySettings = HistorySettings()
    registry: RegistryConfig = RegistryConfig()
    integrations: tuple[IntegrationConfig, ...] = ()

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        parse_listen(v)
        return v


@dataclass(frozen=True, kw_only=True, slots=True)
class Config:
    """The validated config: what the daemon runs with."""

    listen: tuple[str, int]
    store: str
    defaults: Defaults
    alerting: AlertingSettings
    api: ApiConfig
    integrations: tuple[Integration, ...]
    history: HistorySettings = HistorySettings()
    registry: RegistryConfig = RegistryConfig()
    source: str = "<memory>"


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen address must be HOST:PORT, not {value!r}")
    return host.strip("[]"), int(port)


# The safe loader on libyaml (C) where PyYAML was built with it: the pure-Python parser
# took 88% of a 10,000-integration config's load (bench/RESULTS.md, issue 17).
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse(text: str) -> Any:
    """The document: a JSON one (JSON is YAML too) through `json`, the rest through YAML.

    A fleet of 100,000 integrations is a generated file, and JSON parses in a fraction of
    a second where even libyaml takes over ten (bench/RESULTS.md, issue 17). A document
    that only looks like JSON (a YAML flow mapping, `NaN`) falls through to YAML, which
    then reads it as it always did."""
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text, parse_constant=_not_json)
        except ValueError:
            pass
    try:
        return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader, libyaml's
    except yaml.YAMLError:
        # libyaml words its errors its own way and stops at 1,000 levels of nesting: the
        # pure-Python parser says what healthd always said (or reads what it can).
        return yaml.safe_load(text)


def _not_json(name: str) -> Any:
    """`NaN` and `Infinity` are not JSON; YAML reads them as strings, so must we."""
    raise ValueError(name)


def load(path: str | Path, *, listen: str | None = None) -> Config:
    """Read, validate and resolve a config file. Raises ConfigError."""
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            "", f"{path} is not UTF-8 text (byte {exc.start}: {exc.object[exc.start]:#04x})"
        ) from None
    return loads(text, source=str(path), listen=listen)


def loads(text: str, *, source: str = "<memory>", listen: str | None = None) -> Config:
    try:
        raw = _parse(text)
    except RecursionError:
        raise ConfigError("", f"{source} is nested too deeply to be a healthd config") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None)
        raise ConfigError(
            "", f"{source} is not valid YAML{where}" + (f": {problem}" if problem else "")
        ) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("", f"{source} must be a mapping of keys at the top level")
    if listen is not None:
        raw["listen"] = listen
    try:
        parsed = FileConfig.model_validate(raw)
    except ValidationError as exc:
        raise config_error(exc) from None
    # The store is only built here, not opened: `validate` refuses the URL `run` would
    # refuse, and leaves the file (which may be another host's path) alone.
    open_store(parsed.store)
    return Config(
        listen=parse_listen(parsed.listen),
        store=parsed.store,
        defaults=parsed.defaults,
        alerting=parsed.alerting,
        api=_check_tokens(parsed.api),
        integrations=_integrations(parsed),
        history=parsed.history,
        registry=_check_keys(parsed.registry),
        source=source,
    )


def _integrations(parsed: FileConfig) -> tuple[Integration, ...]:
    seen: set[str] = set()
    # Each probe's default options, validated once: most integrations set none, and
    # validating {} 100,000 times took a fifth of a large config's load. Options models
    # are frozen, so the integrations can share one.
    shared_options: dict[type[BaseModel], BaseModel] = {}
    out = []
    for i, ic in enumerate(parsed.integrations):
        at = f"integrations[{i}]"
        if ic.id in seen:
            raise ConfigError(f"{at}.id", f"duplicate integration id {ic.id!r}")
        seen.add(ic.id)
        out.append(
            build_integration(
                ic,
                ic.id,
                ic.credentials,
                defaults=parsed.defaults,
                alerting=parsed.alerting,
                at=at,
                shared_options=shared_options,
            )
        )
    return tuple(out)


def build_integration(
    spec: IntegrationSpec,
    integration_id: str,
    credentials: Mapping[str, Secret],
    *,
    defaults: Defaults,
    alerting: AlertingSettings,
    at: str = "",
    shared_options: dict[type[BaseModel], BaseModel] | None = None,
) -> Integration:
    """An Integration from its validated shape, checked against its provider (the probe's
    options and credential names, a timeout below the interval). The config file and the
    registry API both build through here: the same rules, the same key paths (`at` is the
    entry's own: `integrations[2]` in the file, nothing for one API body).
    `shared_options` keeps each probe's default options once validated, for a spec that
    sets none (see `_integrations`)."""

    def key(name: str) -> str:
        return f"{at}.{name}" if at else name

    try:
        cls = probe_class(spec.provider)
    except UnknownProviderError as exc:
        raise ConfigError(key("provider"), str(exc)) from None
    try:
        cache = shared_options if not spec.options else None
        options = cache.get(cls.Options) if cache is not None else None
        if options is None:
            options = cls.Options.model_validate(spec.options)
            if cache is not None:
                cache[cls.Options] = options
    except ValidationError as exc:
        raise config_error(exc, prefix=key("options")) from None
    for name in cls.credentials:
        if name not in credentials:
            raise ConfigError(key(f"credentials.{name}"), f"required by provider {spec.provider!r}")
    for name in credentials:
        if name not in cls.credentials:
            known = ", ".join(cls.credentials) or "none"
            raise ConfigError(
                key(f"credentials.{name}"),
                f"not used by provider {spec.provider!r} (it takes: {known})",
            )
    timeout = _given(spec.timeout, defaults.timeout)
    interval = _given(spec.interval, defaults.interval)
    if timeout >= interval:
        raise ConfigError(
            key("timeout"), f"must be shorter than the interval ({interval.total_seconds():g}s)"
        )
    return Integration(
        id=integration_id,
        provider=spec.provider,
        tenant=spec.tenant,
        name=spec.name or integration_id,
        base_url=_given(spec.base_url, cls.default_base_url).rstrip("/"),
        page=spec.page,
        interval=interval,
        timeout=timeout,
        thresholds=Thresholds(
            failure_threshold=_given(spec.failure_threshold, defaults.failure_threshold),
            success_threshold=_given(spec.success_threshold, defaults.success_threshold),
            page_after=_given(spec.page_after, alerting.rules.bridge_unreachable.page_after),
        ),
        credentials=dict(credentials),
        options=options,
        traits=cls.traits,
    )


def _given(value: _T | None, default: _T) -> _T:
    """The file's value where it sets one, else the default (`or` would replace a zero)."""
    return default if value is None else value


def _check_tokens(api: ApiConfig) -> ApiConfig:
    if api.jwt is not None:
        try:
            verifying_key(api.jwt)
        except ValueError as exc:
            raise ConfigError("api.jwt.key", str(exc)) from None
    seen: dict[str, str] = {}
    for i, t in enumerate(api.tokens):
        at = f"api.tokens[{i}]"
        if t.role == "tenant" and not t.tenant:
            raise ConfigError(f"{at}.tenant", "a tenant token must name its tenant")
        if t.role == "admin" and t.tenant:
            raise ConfigError(f"{at}.tenant", "an admin token sees every tenant; remove 'tenant'")
        if t.role == "registry" and t.tenant:
            raise ConfigError(
                f"{at}.tenant", "a registry token writes every tenant; remove 'tenant'"
            )
        value = t.token.reveal()
        if len(value) < 16:
            raise ConfigError(f"{at}.token", "too short: use at least 16 characters")
        if value in seen:
            raise ConfigError(f"{at}.token", f"the same token as {seen[value]!r}")
        seen[value] = t.name
    return api


def verifying_key(jwt: JwtConfig) -> Any:
    """The key PyJWT verifies with: the shared secret's bytes (at least 32, as RFC 7518
    asks of HS256), or the PEM public key of the algorithm's type. Raises ValueError."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    text = jwt.key.reveal()
    if jwt.algorithm == "HS256":
        if len(text.encode()) < 32:
            raise ValueError("an HS256 secret must be at least 32 bytes")
        return text.encode()
    try:
        key = load_pem_public_key(text.encode())
    except ValueError:
        raise ValueError(f"not a PEM public key for {jwt.algorithm}") from None
    wanted = Ed25519PublicKey if jwt.algorithm == "EdDSA" else RSAPublicKey
    if not isinstance(key, wanted):
        raise ValueError(f"the public key is not of the type {jwt.algorithm} needs")
    return key


def _check_keys(registry: RegistryConfig) -> RegistryConfig:
    try:
        KeyRing(registry.keys)
    except VaultError as exc:
        raise ConfigError("", str(exc)) from None
    return registry


def config_error(exc: ValidationError, prefix: str = "") -> ConfigError:
    """The first problem as the error's path; all of them in the message, each with its path."""
    lines = []
    first_path = prefix
    for n, err in enumerate(exc.errors(include_url=False, include_input=False)):
        path = _path(err["loc"], prefix)
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        if n == 0:
            first_path = path
            lines.append(msg)
        else:
            lines.append(f"{path}: {msg}")
    return ConfigError(first_path, "\n  ".join(lines))


def _path(loc: tuple[int | str, ...], prefix: str) -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


__all__ = [
    "Config",
    "ConfigError",
    "DEFAULT_LISTEN",
    "IntegrationRequest",
    "IntegrationSpec",
    "Secret",
    "build_integration",
    "config_error",
    "load",
    "loads",
    "parse_listen",
]

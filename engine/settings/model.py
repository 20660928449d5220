"""The settings tree: the core names at the top, one section per part of docsync.

Flags > DOCSYNC_* environment > TOML file > defaults (DESIGN.md, CLI contract). A key `x` of
section `s` is `x` in the file's `[s]` table and `DOCSYNC_S_X` in the environment; a core key
`x` is `x` at the file's top level and `DOCSYNC_X`. Loaded once per process (`load_settings`);
each part reads its section (`settings.serve.port`, `settings.streams.window_s`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from loguru import logger
from pydantic import (
    AfterValidator,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from engine.documents import TYPES
from engine.exceptions import ConfigError
from engine.retries import RetryTable
from engine.settings import sections
from engine.settings.legacy import env_name, move_flags
from engine.settings.region import aws_default_region
from engine.settings.sections import SECTIONS
from engine.settings.sources import Environment, TomlFile, notes, toml_path

DEFAULT_CONFIG = Path("config/docsync.toml")


def _key_prefix(value: str) -> str:
    if not value.endswith("/") or value.startswith("/"):
        raise ValueError("must end with '/' and not start with '/'")
    return value


KeyPrefix = Annotated[str, AfterValidator(_key_prefix)]


class Settings(BaseSettings):
    """Every knob of the engine, as one tree."""

    model_config = SettingsConfigDict(
        env_prefix="DOCSYNC_",
        env_nested_delimiter="_",
        env_nested_max_split=1,  # DOCSYNC_SERVE_SHUTDOWN_TIMEOUT_S → serve.shutdown_timeout_s
        extra="forbid",
        frozen=True,
        validate_default=True,
    )
    _config_file: Path | None = PrivateAttr(default=None)
    _deprecations: tuple[str, ...] = PrivateAttr(default=())
    _flags: frozenset[str] = PrivateAttr(default=frozenset())

    # Where AWS is.
    endpoint_url: str | None = None
    region: str = ""  # unset: boto3's chain (AWS_REGION, AWS_DEFAULT_REGION, the profile)
    # Resource names.
    bucket: str = "docsync-documents"
    table: str = "docsync-cache"
    leases_table: str = "docsync-leases"
    history_table: str = "docsync-history"  # every committed change, from the stream
    queue: str = "docsync-events"
    dlq: str = "docsync-events-dlq"
    work_queue: str = "docsync-reconcile-tasks"  # reconcile shard tasks (`reconcile enqueue`)
    # Document type → S3 key prefix; every registered type, its default unless set here.
    prefixes: dict[str, KeyPrefix] = Field(default_factory=dict)
    reserved_prefix: KeyPrefix = "_docsync/"
    # Cache window and tombstones.
    cache_ttl_days: int = Field(90, ge=1, le=3650)
    tombstone_ttl_days: int = Field(15, ge=1, le=365)
    inflight_grace_s: float = Field(60.0, ge=0)
    history_days: int = Field(400, ge=1, le=3650)  # history entries outlive the cache window
    # Month buckets per GSI partition: n > 1 writes `type#YYYY-MM#k` (k = hash(id) mod n) for
    # tables that write more than one partition takes (~1,000/s); queries fan out over the n.
    # Changing it on a live table needs a reindex (docs/scaling.md): reconcile refuses until then.
    month_shards: int = Field(1, ge=1, le=64)
    # false: the rollout/rollback mode, S3 only (writes and reads never touch DynamoDB).
    cache_enabled: bool = True
    # Signs page tokens; set your own in production so tokens cannot be forged.
    page_token_secret: SecretStr = SecretStr("docsync-page-tokens")
    # Who writes (recorded in history): `--actor` / DOCSYNC_ACTOR on the CLI.
    actor: str | None = Field(None, min_length=1, max_length=200)
    # Behaviour.
    dry_run: bool = False
    concurrency: int = Field(16, ge=1, le=512)  # worker threads; also sizes connection pools
    log_format: Literal["auto", "json", "text"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "json", "text"] = "auto"
    # Record and replay (seed 003 §10.5).
    record: Path | None = None  # DOCSYNC_RECORD: every AWS request and response, JSON lines
    replay: Path | None = None  # DOCSYNC_REPLAY: serve a recording back, no network
    record_redact_bodies: bool = False  # document bodies out of recordings (replays differ)
    # Retries per error class (seed 003 §6.1): the `[retries]` table.
    retries: RetryTable = Field(default_factory=RetryTable)
    # The sections.
    aws: sections.AwsSettings = Field(default_factory=sections.AwsSettings)
    dynamodb: sections.DynamoDBSettings = Field(default_factory=sections.DynamoDBSettings)
    breaker: sections.BreakerSettings = Field(default_factory=sections.BreakerSettings)
    query: sections.QuerySettings = Field(default_factory=sections.QuerySettings)
    l1: sections.L1Settings = Field(default_factory=sections.L1Settings)
    reconcile: sections.ReconcileSettings = Field(default_factory=sections.ReconcileSettings)
    init: sections.InitSettings = Field(default_factory=sections.InitSettings)
    serve: sections.ServeSettings = Field(default_factory=sections.ServeSettings)
    metrics: sections.MetricsSettings = Field(default_factory=sections.MetricsSettings)
    streams: sections.StreamSettings = Field(default_factory=sections.StreamSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, Environment(settings_cls)]
        path = toml_path.get()
        if path is not None:
            sources.append(TomlFile(settings_cls, path))
        return tuple(sources)

    @field_validator("prefixes", mode="before")
    @classmethod
    def _every_registered_type(cls, value: Any) -> Any:
        """The registry's defaults under what is set; a type it does not know is an error."""
        given = dict(value or {}) if isinstance(value, Mapping) else value
        if not isinstance(given, dict):
            return given
        unknown = sorted(set(given) - set(TYPES))
        if unknown:
            raise ValueError(f"unknown document type {unknown[0]!r} (known: {sorted(TYPES)})")
        return {name: given.get(name, t.default_prefix) for name, t in TYPES.items()}

    @field_validator("region")
    @classmethod
    def _region_known(cls, value: str) -> str:
        """Unset here: the region the Lambda runtime, the container or the profile gives, as
        boto3 would find it. None at all: refuse to start rather than guess one."""
        region = value.strip() or aws_default_region()
        if not region:
            raise ValueError(
                "no AWS region: set DOCSYNC_REGION (or --region, or region in the config file),"
                " or AWS_REGION / AWS_DEFAULT_REGION, or a region in the AWS profile"
            )
        return region

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint_is_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _tombstones_outlive_the_queue(self) -> Settings:
        if self.tombstone_ttl_days < self.init.queue_retention_days:
            raise ValueError(
                "tombstone_ttl_days must be >= init.queue_retention_days: a late create event"
                " would otherwise resurrect a deleted document"
            )
        return self

    @property
    def config_file(self) -> Path | None:
        """The TOML file these settings were read from."""
        return self._config_file

    @property
    def flags(self) -> frozenset[str]:
        """The settings given as flags (keyword arguments of load_settings), as dotted paths."""
        return self._flags

    @property
    def deprecations(self) -> tuple[str, ...]:
        """Old names this load met (file keys, environment variables, keyword arguments)."""
        return self._deprecations

    @classmethod
    def build(cls, path: Path | None, flags: Mapping[str, Any]) -> Self:
        """An instance from `path` (None: no file) and the flags a user actually passed;
        a wrong value is a ConfigError naming the setting as the user sets it."""
        found: list[str] = []
        tokens = (toml_path.set(path), notes.set(found))
        try:
            given = move_flags({k: v for k, v in flags.items() if v is not None}, found)
            settings = cls(**given)
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc)) from exc
        except SettingsError as exc:  # a table given in the environment is not JSON
            match = re.search(r'field "([^"]+)"', str(exc))
            name = match.group(1) if match else "?"
            raise ConfigError(
                f"invalid setting {name} [{env_name(None, name)}]: not a JSON object ({exc})"
            ) from exc
        except ValueError as exc:  # a TOML syntax error
            raise ConfigError(f"cannot read {path}: {exc}") from exc
        finally:
            toml_path.reset(tokens[0])
            notes.reset(tokens[1])
        settings._config_file = path
        settings._deprecations = tuple(dict.fromkeys(found))
        settings._flags = frozenset(_dotted(given))
        return settings

    def replace(self, changes: Mapping[str, Any]) -> Self:
        """A validated copy with `changes` applied; keys are dotted paths (`serve.port`)."""
        data = self.model_dump()
        for dotted, value in changes.items():
            *sections, key = dotted.split(".")
            target = data
            for name in sections:
                if not isinstance(target.get(name), dict):
                    raise KeyError(f"no settings section {dotted.rsplit('.', 1)[0]!r}")
                target = target[name]
            if key not in target:
                raise KeyError(f"no setting {dotted!r}")
            target[key] = value
        try:
            copy = self.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc)) from exc
        copy._config_file = self._config_file
        copy._deprecations = self._deprecations
        copy._flags = self._flags | frozenset(changes)
        return copy


def _dotted(values: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The leaves of nested flags as dotted paths (`aws={"max_attempts": 2}`: aws.max_attempts)."""
    out = []
    for name, value in values.items():
        if isinstance(value, Mapping) and value:
            out += _dotted(value, f"{prefix}{name}.")
        else:
            out.append(prefix + name)
    return out


def load_settings(config: Path | str | None = None, **flags: Any) -> Settings:
    """Build settings; `flags` holds only the options a user actually passed (core names, or a
    section as a dict: `aws={"max_attempts": 2}`). Each deprecated name met is a
    DeprecationWarning here and, once logging is set up, a line from `log_deprecations`."""
    path = Path(config) if config is not None else DEFAULT_CONFIG
    if config is not None and not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    settings = Settings.build(path if path.is_file() else None, flags)
    for message in settings.deprecations:
        warnings.warn(message, DeprecationWarning, stacklevel=2)
    return settings


def log_deprecations(settings: Settings) -> None:
    """One warning line per old name, in the log's format (text on a terminal, JSON in services)."""
    for message in settings.deprecations:
        logger.warning("deprecated setting: {} (removed in the next release)", message)


def env_names() -> dict[str, str]:
    """Every environment variable docsync reads → the setting it sets (`serve.port`)."""
    names = {env_name(None, f): f for f in Settings.model_fields if f not in SECTIONS}
    names.pop(env_name(None, "prefixes"))
    for section, model in SECTIONS.items():
        names.update({env_name(section, k): f"{section}.{k}" for k in model.model_fields})
    names.update({env_name("prefixes", t): f"prefixes.{t}" for t in TYPES})
    return names


def describe_validation_error(exc: ValidationError) -> str:
    """One line per wrong setting, naming it the way a user sets it: its path in the file
    (`serve.port` is `port` in `[serve]`) and its environment variable."""
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        name = ".".join(loc) or "settings"
        if not loc:
            env = ""
        elif loc[0] in SECTIONS or loc[0] == "prefixes":
            env = env_name(loc[0], loc[1]) if len(loc) > 1 else env_name(None, loc[0])
        else:
            env = env_name(None, loc[0])
        given = err.get("input")
        shown = f" (got {given!r})" if not isinstance(given, dict) else ""
        where = f" [{env}]" if env else ""
        lines.append(f"invalid setting {name}{where}: {err['msg']}{shown}")
    return "; ".join(lines)

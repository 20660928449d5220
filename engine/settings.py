"""Settings: flags > DOCSYNC_* environment > TOML file > defaults (DESIGN.md, CLI contract)."""

from __future__ import annotations

import functools
import json
import os
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from engine.exceptions import ConfigError
from engine.retries import RetryTable

DEFAULT_CONFIG = Path("config/docsync.toml")
_toml_path: ContextVar[Path | None] = ContextVar("docsync_toml_path", default=None)


class TomlTable(TomlConfigSettingsSource):
    """One level of the TOML file: the top level without its sub-tables of other settings
    classes (`table=None`), or one such table (`[streams]`), empty when the file lacks it."""

    OWN_TABLES = ("streams",)

    def __init__(self, settings_cls: type[BaseSettings], path: Path, table: str | None) -> None:
        self._table = table
        super().__init__(settings_cls, toml_file=path)

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        if self._table is not None:
            section = data.get(self._table, {})
            return section if isinstance(section, dict) else {self._table: section}
        return {k: v for k, v in data.items() if k not in self.OWN_TABLES}


class FileSettings(BaseSettings):
    """Flags > environment > this class's table of the TOML file being loaded > defaults.

    The file is handed over by `build` (a context variable: pydantic-settings builds its
    sources in a classmethod, with no instance to carry it).
    """

    toml_table: ClassVar[str | None] = None  # None: the file's top level

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = _toml_path.get()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path is not None:
            sources.append(TomlTable(settings_cls, path, cls.toml_table))
        return tuple(sources)

    @classmethod
    def build(cls, path: Path | None, flags: dict[str, Any]) -> Self:
        """An instance from `path` (None: no file) and the flags a user actually passed;
        a wrong value is a ConfigError naming the setting as the user sets it."""
        token = _toml_path.set(path)
        try:
            return cls(**{k: v for k, v in flags.items() if v is not None})
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc, cls)) from exc
        except ValueError as exc:  # a TOML syntax error
            raise ConfigError(f"cannot read {path}: {exc}") from exc
        finally:
            _toml_path.reset(token)


class Settings(FileSettings):
    """Every knob of the engine. Field `x` is env `DOCSYNC_X` and TOML key `x`."""

    model_config = SettingsConfigDict(
        env_prefix="DOCSYNC_", extra="forbid", frozen=True, validate_default=True
    )
    _config_file: Path | None = PrivateAttr(default=None)

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
    work_queue: str = "docsync-reconcile-tasks"  # reconcile shard tasks (`--enqueue`)
    change_prefix: str = "changes/"
    announcement_prefix: str = "announcements/"
    reserved_prefix: str = "_docsync/"
    # Cache window and tombstones.
    cache_ttl_days: int = Field(90, ge=1, le=3650)
    tombstone_ttl_days: int = Field(15, ge=1, le=365)
    inflight_grace_s: float = Field(60.0, ge=0)
    history_days: int = Field(400, ge=1, le=3650)  # history entries outlive the cache window
    # Who writes (recorded in history): `--actor` / DOCSYNC_ACTOR on the CLI.
    actor: str | None = Field(None, min_length=1, max_length=200)
    # Behaviour.
    dry_run: bool = False
    log_format: Literal["auto", "json", "text"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "json", "text"] = "auto"
    # AWS client tuning.
    retry_mode: Literal["standard", "adaptive", "legacy"] = "standard"
    max_attempts: int = Field(10, ge=1, le=50)  # a cap over every class of [retries]
    connect_timeout_s: float = Field(2.0, gt=0)
    read_timeout_s: float = Field(10.0, gt=0)
    concurrency: int = Field(16, ge=1, le=512)
    # DynamoDB token bucket, shared by all threads of a process.
    dynamodb_rps: float = Field(500.0, gt=0)
    dynamodb_burst: int = Field(50, ge=1)
    rate_limit_timeout_s: float = Field(10.0, ge=0)
    # Circuit breaker in front of DynamoDB on the read path.
    breaker_fail_max: int = Field(5, ge=1)
    breaker_reset_s: float = Field(30.0, gt=0)
    # Queries.
    query_page_max: int = Field(1000, ge=1, le=10000)
    query_default_limit: int = Field(50, ge=1)
    # Month buckets per GSI partition: n > 1 writes `type#YYYY-MM#k` (k = hash(id) mod n) for
    # tables that write more than one partition takes (~1,000/s); queries fan out over the n.
    # Changing it on a live table needs a reindex (docs/scaling.md): reconcile refuses until then.
    month_shards: int = Field(1, ge=1, le=64)
    # L1: the in-process cache of gets, query pages and counts. auto = on in `serve`, off in
    # the one-shot CLI; library users pass Engine.build(..., l1=True) or set "on".
    l1: Literal["auto", "on", "off"] = "auto"
    l1_max_bytes: int = Field(64 * 1024 * 1024, ge=0)
    l1_max_staleness_s: float = Field(1.0, gt=0, le=300)  # DAX-like bound on an L1 answer's age
    # false: the rollout/rollback mode, S3 only (writes and reads never touch DynamoDB).
    cache_enabled: bool = True
    # Signs page tokens; set your own in production so tokens cannot be forged.
    page_token_secret: SecretStr = SecretStr("docsync-page-tokens")
    # Reconciler.
    reconcile_shards_per_type: int = Field(4, ge=1, le=65)
    reconcile_workers: int = Field(8, ge=1, le=256)
    reconcile_report_cap: int = Field(1000, ge=0)
    reconcile_report_cron: str = "0 * * * *"  # hourly drift report ("" = off)
    reconcile_repair_cron: str = "30 3 * * *"  # daily repair ("" = off)
    reconcile_misfire_grace_s: int = Field(300, ge=1)
    reconcile_lock_ttl_s: float = Field(120.0, gt=0)
    report_dir: str | None = None
    # Infrastructure created by `docsync init`.
    versioning: bool = False
    noncurrent_version_days: int = Field(30, ge=1)
    queue_retention_days: int = Field(4, ge=1, le=14)
    tags: dict[str, str] = Field(default_factory=lambda: {"app": "docsync"})
    # `docsync serve`: its parts, and its HTTP API.
    serve_listener: bool = True
    serve_consumer: bool = True
    serve_scheduler: bool = True
    serve_api: bool = True
    serve_host: str = "127.0.0.1"
    serve_port: int = Field(8080, ge=0, le=65535)
    shutdown_timeout_s: float = Field(25.0, gt=0, le=3600)  # SIGTERM → exit within this
    part_restart_max_s: float = Field(60.0, gt=0)  # backoff cap for a failing part
    api_keys: SecretStr | None = None  # comma-separated; or one per line in api_keys_file
    api_keys_file: str | None = None
    rate_limit_per_minute: int = Field(600, ge=0)  # per API key; 0 = off
    rate_limit_burst: int = Field(60, ge=1)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    # CloudWatch figures for the alarms (engine/cloudwatch.py, docs/metrics.md).
    metrics_namespace: str = Field("docsync", min_length=1, max_length=255)
    metrics_environment: str = Field("default", min_length=1, max_length=1024)  # the stack name
    metrics_sink: Literal["emf", "putmetricdata", "off"] = "emf"
    metrics_flush_s: float = Field(60.0, gt=0, le=3600)  # serve and the CLI; Lambda: per call
    # The AWS adapter (seed 003): retries per error class, breakers, metrics, record/replay.
    retries: RetryTable = Field(default_factory=RetryTable)
    breaker_success_threshold: int = Field(2, ge=1)  # half-open trial successes that close
    aws_breakers: bool = True  # circuit breakers on S3 and SQS calls too (same thresholds)
    aws_metrics: bool = True  # per-operation AWS metrics (botocore hooks)
    consumed_capacity: Literal["INDEXES", "TOTAL", "NONE"] = "INDEXES"
    record: Path | None = None  # DOCSYNC_RECORD: every AWS request and response, JSON lines
    replay: Path | None = None  # DOCSYNC_REPLAY: serve a recording back, no network
    record_redact_bodies: bool = False  # document bodies out of recordings (replays differ)

    @field_validator("change_prefix", "announcement_prefix", "reserved_prefix")
    @classmethod
    def _prefix_ends_with_slash(cls, value: str) -> str:
        if not value.endswith("/") or value.startswith("/"):
            raise ValueError("must end with '/' and not start with '/'")
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        """`a,b` or a JSON list, from the environment."""
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

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

    @property
    def config_file(self) -> Path | None:
        """The TOML file these settings were read from (its [streams] table is read apart)."""
        return self._config_file

    @model_validator(mode="after")
    def _tombstones_outlive_the_queue(self) -> Settings:
        if self.tombstone_ttl_days < self.queue_retention_days:
            raise ValueError(
                "tombstone_ttl_days must be >= queue_retention_days: a late create event"
                " would otherwise resurrect a deleted document"
            )
        return self

    def prefixes(self) -> dict[str, str]:
        """Document type → S3 key prefix."""
        return {"change": self.change_prefix, "announcement": self.announcement_prefix}


def aws_default_region() -> str | None:
    """boto3's own chain: AWS_REGION (which the Lambda runtime sets, and which botocore itself
    does not read), then botocore's `region` (AWS_DEFAULT_REGION, then the profile's config)."""
    from botocore.exceptions import ProfileNotFound

    region = os.environ.get("AWS_REGION", "").strip()
    if region:
        return region
    try:
        return _botocore_region(_region_inputs())
    except ProfileNotFound as exc:
        raise ValueError(f"{exc} (AWS_PROFILE)") from exc


def _region_inputs() -> tuple[object, ...]:
    """What botocore's answer depends on: the key of its cache (a Session costs ~6 ms)."""
    names = ("AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE")
    config = Path(os.environ.get("AWS_CONFIG_FILE") or "~/.aws/config").expanduser()
    try:
        stamp: tuple[int, int] | None = (config.stat().st_mtime_ns, config.stat().st_size)
    except OSError:
        stamp = None
    return (*(os.environ.get(name) for name in names), stamp)


@functools.lru_cache(maxsize=16)
def _botocore_region(_inputs: tuple[object, ...]) -> str | None:
    import botocore.session

    found = botocore.session.Session().get_config_variable("region")
    return str(found) if found else None


def load_settings(config: Path | str | None = None, **flags: Any) -> Settings:
    """Build settings; `flags` holds only the options a user actually passed."""
    path = Path(config) if config is not None else DEFAULT_CONFIG
    if config is not None and not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    used = path if path.is_file() else None
    settings = Settings.build(used, flags)
    settings._config_file = used
    return settings


def describe_validation_error(exc: ValidationError, cls: type[BaseSettings]) -> str:
    """One line per wrong setting, naming it the way a user sets it: its key in the file (with
    its table) and its environment variable."""
    table = getattr(cls, "toml_table", None)
    prefix = str(cls.model_config.get("env_prefix", ""))
    lines = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"]) or "settings"
        name = f"{table}.{name}" if table else name
        env = prefix + str(err["loc"][0]).upper() if err["loc"] else ""
        given = err.get("input")
        shown = f" (got {given!r})" if not isinstance(given, dict) else ""
        lines.append(f"invalid setting {name} [{env}]: {err['msg']}{shown}")
    return "; ".join(lines)

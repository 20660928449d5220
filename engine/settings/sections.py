"""The sections of the settings tree: one model per part of docsync, each a table of the TOML
file (`[serve]`, `[reconcile]`, …) and an environment prefix (`DOCSYNC_SERVE_<KEY>`).

Plain frozen models: only the root (engine/settings/model.py) reads the file and the
environment, once, and hands each part its section.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import NoDecode


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


class AwsSettings(Section):
    """`[aws]`: the clients every store shares (botocore's retries, timeouts, the adapter)."""

    retry_mode: Literal["standard", "adaptive", "legacy"] = "standard"
    max_attempts: int = Field(10, ge=1, le=50)  # a cap over every class of [retries]
    connect_timeout_s: float = Field(2.0, gt=0)
    read_timeout_s: float = Field(10.0, gt=0)
    breakers: bool = True  # circuit breakers on S3 and SQS calls too (same thresholds)
    metrics: bool = True  # per-operation AWS metrics (botocore hooks)
    # INDEXES where an index can be charged (TOTAL on reads of a table alone) | TOTAL | NONE
    consumed_capacity: Literal["INDEXES", "TOTAL", "NONE"] = "INDEXES"


class DynamoDBSettings(Section):
    """`[dynamodb]`: the token bucket shared by all threads of a process."""

    rps: float = Field(500.0, gt=0)
    burst: int = Field(50, ge=1)
    rate_limit_timeout_s: float = Field(10.0, ge=0)


class BreakerSettings(Section):
    """`[breaker]`: the circuit breakers (DynamoDB on the read path; S3 and SQS too with
    aws.breakers)."""

    fail_max: int = Field(5, ge=1)
    reset_s: float = Field(30.0, gt=0)
    success_threshold: int = Field(2, ge=1)  # half-open trial successes that close


class QuerySettings(Section):
    """`[query]`: pages of the customer and month queries."""

    page_max: int = Field(1000, ge=1, le=10000)
    default_limit: int = Field(50, ge=1)


class L1Settings(Section):
    """`[l1]`: the in-process cache of gets, query pages and counts. auto = on in `serve`, off
    in the one-shot CLI; library users pass Engine.build(..., l1=True) or set "on"."""

    mode: Literal["auto", "on", "off"] = "auto"
    max_bytes: int = Field(64 * 1024 * 1024, ge=0)
    max_staleness_s: float = Field(1.0, gt=0, le=300)  # DAX-like bound on an L1 answer's age


class ReconcileSettings(Section):
    """`[reconcile]`: the drift reports and repairs, and their schedule in `serve`."""

    shards_per_type: int = Field(4, ge=1, le=65)
    workers: int = Field(8, ge=1, le=256)
    report_cap: int = Field(1000, ge=0)
    report_cron: str = "0 * * * *"  # hourly drift report ("" = off)
    repair_cron: str = "30 3 * * *"  # daily repair ("" = off)
    misfire_grace_s: int = Field(300, ge=1)
    lock_ttl_s: float = Field(120.0, gt=0)
    report_dir: str | None = None


class InitSettings(Section):
    """`[init]`: what `docsync init` creates beyond the names."""

    versioning: bool = False
    noncurrent_version_days: int = Field(30, ge=1)
    queue_retention_days: int = Field(4, ge=1, le=14)
    tags: dict[str, str] = Field(default_factory=lambda: {"app": "docsync"})


class ServeSettings(Section):
    """`[serve]`: which parts `docsync serve` runs, and its HTTP API."""

    listener: bool = True
    consumer: bool = True
    scheduler: bool = True
    api: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    shutdown_timeout_s: float = Field(25.0, gt=0, le=3600)  # SIGTERM → exit within this
    part_restart_max_s: float = Field(60.0, gt=0)  # backoff cap for a failing part
    api_keys: SecretStr | None = None  # comma-separated; or one per line in api_keys_file
    api_keys_file: str | None = None
    rate_limit_per_minute: int = Field(600, ge=0)  # per API key; 0 = off
    rate_limit_burst: int = Field(60, ge=1)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        """`a,b` or a JSON list, from the environment."""
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


class MetricsSettings(Section):
    """`[metrics]`: the CloudWatch figures the alarms watch (engine/cloudwatch.py)."""

    namespace: str = Field("docsync", min_length=1, max_length=255)
    environment: str = Field("default", min_length=1, max_length=1024)  # the stack name
    sink: Literal["emf", "putmetricdata", "off"] = "emf"
    flush_s: float = Field(60.0, gt=0, le=3600)  # serve and the CLI; Lambda: per call


class StreamSettings(Section):
    """`[streams]`: the stream consumers and the read path's hit/miss flush."""

    # Analytics: tumbling windows by record time, rows kept as JSON lines.
    window_s: int = Field(60, ge=1, le=86400)
    analytics_dir: str | None = None  # a directory: JSON lines there; unset: S3, reserved prefix
    # Hit/miss flush of the read path into one metrics item per window of the cache table.
    flush_interval_s: float = Field(10.0, gt=0)
    metrics_window_s: int = Field(60, ge=1, le=86400)
    metrics_ttl_days: int = Field(7, ge=1, le=365)
    # Local consumer.
    lease_ttl_s: float = Field(30.0, gt=0)
    checkpoint_interval_s: float = Field(10.0, gt=0)
    idle_wait_s: float = Field(1.0, ge=0)
    shard_refresh_s: float = Field(60.0, gt=0)
    get_records_limit: int = Field(1000, ge=1, le=1000)
    dedupe_capacity: int = Field(20_000, ge=0)  # ~7 MB; a Lambda batch is ≤ 10,000
    metrics_port: int = Field(0, ge=0, le=65535)
    # Stream-driven repair and document history (engine/streams/effects.py).
    repair: bool = True  # repair stuck intents and re-check rewritten entries
    history: bool = True  # record every committed change in the history table
    recheck_delay_s: float = Field(5.0, ge=0)
    pending_capacity: int = Field(10_000, ge=1)  # keys held for repair; past it: reconcile
    # Lambda: wait in the invocation for a pending key's deadline at most this long; a key
    # further off is retried from its record (a partial batch failure).
    lambda_repair_wait_s: float = Field(10.0, ge=0, le=600)

    @property
    def lease_renew_s(self) -> float:
        return self.lease_ttl_s / 3


SECTIONS: dict[str, type[Section]] = {
    "aws": AwsSettings,
    "dynamodb": DynamoDBSettings,
    "breaker": BreakerSettings,
    "query": QuerySettings,
    "l1": L1Settings,
    "reconcile": ReconcileSettings,
    "init": InitSettings,
    "serve": ServeSettings,
    "metrics": MetricsSettings,
    "streams": StreamSettings,
}

"""Knobs of the stream consumers and of the read-metrics flush: env `DOCSYNC_STREAMS_<X>`,
or `x` in the `[streams]` table of the settings file.

Kept apart from engine.settings.Settings (which forbids unknown keys) so that the streams
part can be configured, and tested with short leases, without touching the core settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from engine.settings import FileSettings


class StreamSettings(FileSettings):
    model_config = SettingsConfigDict(
        env_prefix="DOCSYNC_STREAMS_", extra="forbid", frozen=True, validate_default=True
    )
    toml_table: ClassVar[str | None] = "streams"

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


def load_stream_settings(config_file: Path | None = None, **flags: Any) -> StreamSettings:
    """Flags (only those given) > DOCSYNC_STREAMS_* environment > the `[streams]` table of
    `config_file` (pass `settings.config_file`) > defaults."""
    return StreamSettings.build(config_file, flags)

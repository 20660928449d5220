"""The demo's closing section: flush the reads, drain the stream, show `docsync stats`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console

from engine.app import Engine
from engine.readmetrics.flush import MetricsFlusher
from engine.settings import StreamSettings
from engine.streams.consumer import LocalConsumer
from engine.streams.stats import gather, render_text


def stats_section(
    out: Console, engine: Engine, since: timedelta = timedelta(hours=1)
) -> dict[str, Any]:
    """What `docsync consume --drain` then `docsync stats` would show; returns the figures."""
    settings = engine.settings
    MetricsFlusher(engine.cache, engine.reader.stats).flush()
    config = StreamSettings(idle_wait_s=0.0, lease_ttl_s=10.0)
    consumed = LocalConsumer(settings, config, engine.clients).run(drain=True)
    out.print(
        f"\nstream consumer: {consumed.core['records']} records from {consumed.shards} shard(s),"
        f" {consumed.rows_emitted} analytics rows"
    )
    data = gather(settings, config, engine.clients, datetime.now(UTC) - since, windows=6)
    render_text(data, out)
    return data

"""The figures a CLI process leaves for `docsync stats`: its reads and its consumed capacity
per operation kind, flushed into the cache table's metrics items (engine/readmetrics/)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from engine.app import Engine
from engine.readmetrics.flush import MetricsFlusher


@contextmanager
def metrics_flush(engine: Engine, periodic: bool = False) -> Iterator[None]:
    """The command's cost (capacity per operation kind) and reads, into the cache table's
    metrics items for `docsync stats`: a one-shot command makes ONE extra UpdateItem at exit
    (none in a dry run, with the cache off, or when it consumed nothing); `periodic` also
    flushes meanwhile."""
    if engine.settings.dry_run or not engine.settings.cache_enabled:
        yield
        return
    conf = engine.settings.streams
    flusher = MetricsFlusher(
        engine.cache,
        engine.reader.stats,
        interval_s=conf.flush_interval_s,
        window_s=conf.metrics_window_s,
        ttl_days=conf.metrics_ttl_days,
    )
    if periodic:
        flusher.start()
    try:
        yield
    finally:
        flusher.stop()  # the last (or only) flush; a failure is logged, never raised

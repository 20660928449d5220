"""Hit/miss across instances: each process flushes what its reader counted since the last
flush as ONE atomic UpdateItem (ADD) into a reserved metrics item of the cache table (item.py),
through the cache store, so the limiter and the breaker apply to it as to every cache call.
The same update carries the capacity units the process consumed per operation kind
(capacity.py), so `docsync stats` can add up what a reconcile or the read path cost.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from loguru import logger

from engine import keys, metrics
from engine.readmetrics import capacity
from engine.readmetrics.item import flush_update
from engine.readmetrics.stats import ReadStats

if TYPE_CHECKING:
    from engine.store.cache import CacheStore


class MetricsFlusher:
    """Flushes a ReadStats' deltas every `interval_s` (from a daemon thread) and at `stop()`.

    Each flush has an id, recorded in the item by the same update and checked by its condition:
    a retry (botocore's after a timeout, or ours after a failure) of a flush that did land is
    refused instead of counted twice. A failed flush is retried as it was, before new deltas.
    """

    def __init__(
        self,
        cache: CacheStore,
        stats: ReadStats,
        *,
        interval_s: float = 10.0,
        window_s: int = 60,
        ttl_days: int = 7,
        clock: Any = time.time,
    ) -> None:
        self._cache = cache
        self.stats = stats
        self.interval_s = interval_s
        self.window_s = window_s
        self.ttl_s = ttl_days * 86400
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._flush_lock = threading.Lock()
        self._pending: tuple[str, int, ReadStats.Delta, capacity.Capacity] | None = None
        self.flushes = 0

    def flush(self) -> ReadStats.Delta | None:
        """One flush now; returns the reads it carried (None when there was nothing to carry:
        no reads and no capacity but the flushes' own)."""
        with self._flush_lock:
            if self._pending is None:
                delta = self.stats.take_delta()
                units = capacity.TAKER.take()
                if delta.empty() and not capacity.worth_a_flush(units):
                    capacity.TAKER.give_back(units)
                    return None
                window = keys.tumbling_start(self._clock(), self.window_s)
                self._pending = (uuid.uuid4().hex, window, delta, units)
            flush_id, window, delta, units = self._pending
            try:
                self._write(flush_id, window, delta, units)
            except Exception:
                metrics.METRICS_FLUSHES.labels("failed").inc()
                raise
            self._pending = None
            self.flushes += 1
            metrics.METRICS_FLUSHES.labels("ok").inc()
            return delta

    def _write(
        self,
        flush_id: str,
        window: int,
        delta: ReadStats.Delta,
        units: capacity.Capacity | None = None,
    ) -> None:
        # A refused condition means this very flush landed already (a retried request).
        self._cache.add_read_metrics(
            flush_update(
                flush_id, window, self.window_s, self.ttl_s, delta, capacity.adds(units or {})
            )
        )

    # -- periodic --------------------------------------------------------------------------

    def start(self) -> MetricsFlusher:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="metrics-flush", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._flush_logged()

    def _flush_logged(self) -> None:
        try:
            self.flush()
        except Exception as exc:  # the reads go on; the delta waits for the next flush
            logger.bind(op="metrics.flush").warning("flush failed, kept for the next: {}", exc)

    def stop(self) -> None:
        """Stop the thread and flush what is left (shutdown)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval_s + 5)
            self._thread = None
        self._flush_logged()

    def __enter__(self) -> MetricsFlusher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

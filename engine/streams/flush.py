"""Hit/miss across instances: each process flushes what its reader counted since the last
flush as ONE atomic UpdateItem (ADD) into a reserved metrics item of the cache table.

The item (`_docsync#metrics#<window start>`) holds counters and latency bucket counts for one
window, has a TTL and no GSI key attribute (it is in no index, so neither queries nor the
reconciler ever see it). Its stream records carry old and new images: new − old is exactly one
flush, whichever process made it, so the consumers add flushes up to cluster-wide figures.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from loguru import logger

from engine import metrics
from engine.exceptions import CacheUnavailableError, StoreError
from engine.reader import ReadStats
from engine.store.errors import is_conditional_failure, is_outage

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

RESERVED_PK = "_docsync#"
METRICS_PK = RESERVED_PK + "metrics#"
METRICS_KIND = "read_metrics"
_COUNTERS = ("hits", "misses", "s3_fallbacks", "backfills")


def window_start(ts: float, window_s: int) -> int:
    return int(ts // window_s * window_s)


def metrics_pk(window: int) -> str:
    """Sortable, readable: `_docsync#metrics#2026-11-23T12:04:00Z`."""
    return METRICS_PK + datetime.fromtimestamp(window, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_reserved(pk: str | None) -> bool:
    return pk is not None and pk.startswith(RESERVED_PK)


def delta_of_image(image: Mapping[str, Any] | None) -> ReadStats.Delta:
    """The counters an item image holds (all zero for None)."""
    if not image:
        return ReadStats.Delta(buckets=(0,) * (len(ReadStats.BUCKETS_MS) + 1))
    buckets = tuple(int(image.get(f"lat_b{i}", 0)) for i in range(len(ReadStats.BUCKETS_MS) + 1))
    return ReadStats.Delta(
        hits=int(image.get("hits", 0)),
        misses=int(image.get("misses", 0)),
        s3_fallbacks=int(image.get("s3_fallbacks", 0)),
        backfills=int(image.get("backfills", 0)),
        latency_sum_ms=float(image.get("lat_sum_ms", 0.0)),
        buckets=buckets,
    )


def flush_delta(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> ReadStats.Delta:
    """What one flush added: new image − old image of the metrics item."""
    return delta_of_image(new) - delta_of_image(old)


class MetricsFlusher:
    """Flushes a ReadStats' deltas every `interval_s` (from a daemon thread) and at `stop()`.

    Each flush has an id, recorded in the item by the same update and checked by its condition:
    a retry (botocore's after a timeout, or ours after a failure) of a flush that did land is
    refused instead of counted twice. A failed flush is retried as it was, before new deltas.
    """

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        stats: ReadStats,
        *,
        interval_s: float = 10.0,
        window_s: int = 60,
        ttl_days: int = 7,
        clock: Any = time.time,
    ) -> None:
        self._ddb = client
        self.table = table
        self.stats = stats
        self.interval_s = interval_s
        self.window_s = window_s
        self.ttl_s = ttl_days * 86400
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._flush_lock = threading.Lock()
        self._pending: tuple[str, int, ReadStats.Delta] | None = None
        self.flushes = 0

    def flush(self) -> ReadStats.Delta | None:
        """One flush now; returns what it carried (None when there was nothing to carry)."""
        with self._flush_lock:
            if self._pending is None:
                delta = self.stats.take_delta()
                if delta.empty():
                    return None
                window = window_start(self._clock(), self.window_s)
                self._pending = (uuid.uuid4().hex, window, delta)
            flush_id, window, delta = self._pending
            try:
                self._write(flush_id, window, delta)
            except Exception:
                metrics.METRICS_FLUSHES.labels("failed").inc()
                raise
            self._pending = None
            self.flushes += 1
            metrics.METRICS_FLUSHES.labels("ok").inc()
            return delta

    def _write(self, flush_id: str, window: int, delta: ReadStats.Delta) -> None:
        adds = {name: getattr(delta, name) for name in _COUNTERS}
        adds["lat_sum_ms"] = round(delta.latency_sum_ms, 3)
        adds.update({f"lat_b{i}": n for i, n in enumerate(delta.buckets) if n})
        adds["flushes"] = 1
        names = {f"#a{i}": name for i, name in enumerate(adds)}
        values: dict[str, Any] = {f":a{i}": {"N": str(v)} for i, v in enumerate(adds.values())}
        values.update(
            {
                ":kind": {"S": METRICS_KIND},
                ":ws": {"N": str(window)},
                ":wlen": {"N": str(self.window_s)},
                ":exp": {"N": str(int(window + self.window_s + self.ttl_s))},
                ":bounds": {"L": [{"N": str(b)} for b in ReadStats.BUCKETS_MS]},
            }
        )
        names.update({"#k": "kind", "#ws": "window_start", "#wl": "window_s", "#e": "expires_at"})
        names.update({"#bd": "bounds_ms", "#ids": "flush_ids"})
        values[":id"] = {"S": flush_id}
        values[":ids"] = {"SS": [flush_id]}
        update = (
            "ADD "
            + ", ".join(f"#a{i} :a{i}" for i in range(len(adds)))
            + ", #ids :ids SET #k = :kind, #ws = :ws, #wl = :wlen, #e = if_not_exists(#e, :exp),"
            " #bd = if_not_exists(#bd, :bounds)"
        )
        try:
            self._ddb.update_item(
                TableName=self.table,
                Key={"pk": {"S": metrics_pk(window)}},
                UpdateExpression=update,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ConditionExpression="attribute_not_exists(#ids) OR NOT contains(#ids, :id)",
            )
        except (ClientError, BotoCoreError) as exc:
            if is_conditional_failure(exc):
                return  # this very flush landed already (a retried request)
            if is_outage(exc):
                raise CacheUnavailableError(f"metrics flush failed: {exc}") from exc
            raise StoreError(f"metrics flush failed: {exc}") from exc

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

"""The reserved metrics item of the cache table: its key, the update one flush makes, and the
counters an image of it holds (what the flusher writes and the consumers read, in one place).

The item (`_docsync#metrics#<window start>`) holds counters and latency bucket counts for one
window, and the capacity units each operation kind consumed (capacity.py). It has a TTL and no
GSI key attribute (it is in no index, so neither queries nor the reconciler ever see it). Its stream
records carry old and new images: new − old is exactly one flush, whichever process made it
(cluster.py adds them up).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from engine.readmetrics.stats import ReadStats

RESERVED_PK = "_docsync#"
METRICS_PK = RESERVED_PK + "metrics#"
METRICS_KIND = "read_metrics"
_COUNTERS = ("hits", "misses", "s3_fallbacks", "backfills")
_SLOTS = len(ReadStats.BUCKETS_MS) + 1  # one more bucket holds everything above


def metrics_pk(window: int) -> str:
    """Sortable, readable: `_docsync#metrics#2026-11-23T12:04:00Z`."""
    return METRICS_PK + datetime.fromtimestamp(window, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_reserved(pk: str | None) -> bool:
    return pk is not None and pk.startswith(RESERVED_PK)


def zero() -> ReadStats.Delta:
    return ReadStats.Delta(buckets=(0,) * _SLOTS)


def delta_of_image(image: Mapping[str, Any] | None) -> ReadStats.Delta:
    """The counters an item image holds (all zero for None)."""
    if not image:
        return zero()
    return ReadStats.Delta(
        hits=int(image.get("hits", 0)),
        misses=int(image.get("misses", 0)),
        s3_fallbacks=int(image.get("s3_fallbacks", 0)),
        backfills=int(image.get("backfills", 0)),
        latency_sum_ms=float(image.get("lat_sum_ms", 0.0)),
        buckets=tuple(int(image.get(f"lat_b{i}", 0)) for i in range(_SLOTS)),
    )


def flush_update(
    flush_id: str,
    window: int,
    window_s: int,
    ttl_s: int,
    delta: ReadStats.Delta,
    capacity: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The UpdateItem of one flush (all but the table): ADD the delta, the capacity units
    (`cap_<kind>_<side>`, capacity.py's `adds`) and the flush id, on the condition that the id
    is not there yet (a retry of a flush that landed is refused)."""
    adds: dict[str, Any] = {name: getattr(delta, name) for name in _COUNTERS}
    adds["lat_sum_ms"] = round(delta.latency_sum_ms, 3)
    adds.update({f"lat_b{i}": n for i, n in enumerate(delta.buckets) if n})
    adds.update(capacity or {})
    adds["flushes"] = 1
    names = {f"#a{i}": name for i, name in enumerate(adds)}
    values: dict[str, Any] = {f":a{i}": {"N": str(v)} for i, v in enumerate(adds.values())}
    values.update(
        {
            ":kind": {"S": METRICS_KIND},
            ":ws": {"N": str(window)},
            ":wlen": {"N": str(window_s)},
            ":exp": {"N": str(int(window + window_s + ttl_s))},
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
    return {
        "Key": {"pk": {"S": metrics_pk(window)}},
        "UpdateExpression": update,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ConditionExpression": "attribute_not_exists(#ids) OR NOT contains(#ids, :id)",
    }

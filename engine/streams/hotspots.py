"""Hot GSI partitions (seed 003 §10.1): which month buckets and customer buckets take the writes.

A GSI partition takes about 1,000 writes/s, and every write of a type lands in that type's
current month bucket (time and status indexes) and in one bucket per customer it names
(customer index). The counts come from the stream core, not from the write pipeline: the
stream carries every committed write of every writer (pipelines in every process, the
listener, backfill, repair), with the exact keys the image holds (shard included), while a
pipeline sees only its own process's puts. Pure functions over images and analytics rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from engine import keys
from engine.store.item import CacheItem

LIMIT_WRITES_PER_S = 1000.0  # DynamoDB's per-partition write ceiling (1,000 WCU/s)


def partitions_of(item: CacheItem) -> list[str]:
    """`index partition` of every GSI entry a committed image writes (a tombstone: those its
    previous image held, which the write removes: pass the old image)."""
    type_name, tpk = item.type, item.tpk
    if not tpk:
        return []
    out = [f"{keys.TIME_INDEX} {tpk}"]
    if item.spk:
        out.append(f"{keys.STATUS_INDEX} {item.spk}")
    month = tpk[len(type_name) + 1 :]
    customers = dict.fromkeys(item.customers or ())
    out += [
        f"{keys.CUSTOMER_INDEX} {keys.customer_partition(c, type_name, month)}" for c in customers
    ]
    return out


def busiest(rows: Iterable[Mapping[str, Any]], top: int = 10) -> list[dict[str, Any]]:
    """The partitions with the most writes in one analytics window (rows merged), busiest
    first: index, partition, peak writes in a window, that as writes/s, and the share of the
    ~1,000/s a partition takes."""
    peaks: dict[str, tuple[int, int, str]] = {}  # partition → (writes, window_s, window_start)
    totals: Counter[str] = Counter()
    for row in rows:
        window_s = int(row.get("window_s", 60)) or 60
        for partition, n in (row.get("partitions") or {}).items():
            writes = int(n)
            totals[partition] += writes
            best = peaks.get(partition)
            if best is None or writes / window_s > best[0] / best[1]:
                peaks[partition] = (writes, window_s, str(row.get("window_start")))
    ranked = sorted(peaks.items(), key=lambda kv: (-kv[1][0] / kv[1][1], kv[0]))[:top]
    out = []
    for partition, (writes, window_s, start) in ranked:
        index, _, key = partition.partition(" ")
        per_s = writes / window_s
        out.append(
            {
                "index": index,
                "partition": key,
                "writes": totals[partition],
                "peak_window": start,
                "peak_writes_per_s": round(per_s, 3),
                "of_limit": round(per_s / LIMIT_WRITES_PER_S, 4),
            }
        )
    return out

"""Both sides of a shard, as iterators in S3 key order (UTF-8 bytes): never held in memory."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from engine import keys
from engine.exceptions import MonthShardsChangedError
from engine.store.cache import CacheStore
from engine.store.objects import ObjectStore
from reconciler.shards import Shard, start_after


@dataclass(frozen=True, slots=True)
class S3Row:
    key: str
    etag: str
    size: int
    last_modified: datetime


@dataclass(frozen=True, slots=True)
class CacheRow:
    key: str
    etag: str | None
    size: int | None
    last_modified: datetime | None
    expires_at: int
    pending_at: datetime | None  # an intent of the write pipeline, and when it began
    customers: tuple[str, ...] = ()  # the committed image's
    # Its customer-index entries: (customer, etag, expires_at) each. They sort right after
    # their document in the key index (`<s3 key>#<customer>`), so they come in the same pass.
    index: tuple[tuple[str, str | None, int], ...] = ()
    live: bool = True  # False: no live entry, only index entries left behind under this key


def s3_rows(objects: ObjectStore, shard: Shard) -> Iterator[S3Row]:
    for info in objects.list(shard.prefix, start_after(shard)):
        if not shard.contains(info.key):
            if shard.stop is not None and info.key.encode() >= (shard.prefix + shard.stop).encode():
                return
            continue
        yield S3Row(info.key, info.etag, info.size, info.last_modified)


def cache_rows(cache: CacheStore, shard: Shard) -> Iterator[CacheRow]:
    """Live entries from the key index, partition by partition (their order is byte order)."""
    for char in shard.chars:
        partition = keys.key_shard(shard.prefix, char)
        yield from _with_index(cache.key_index(partition))


def check_month_shards(
    cache: CacheStore, types: Iterable[str], since: datetime, until: datetime, shards: int
) -> None:
    """Refuse a run over a table whose month buckets were written with another shard count
    (queries with this count would miss those entries, so a report would be wrong too)."""
    for type_name in types:
        for month in keys.months_desc(since, until):
            for partition in keys.stray_buckets(type_name, month, shards):
                if cache.holds_any(keys.TIME_INDEX, "tpk", partition):
                    raise MonthShardsChangedError(
                        f"the cache holds entries in month bucket {partition!r}, which"
                        f" month_shards = {shards} never reads: the setting changed on a live"
                        " table. Put it back, or rebuild the cache for the new count"
                        " (docs/scaling.md)."
                    )


def _with_index(items: Iterable[dict[str, Any]]) -> Iterator[CacheRow]:
    """Fold each document's index entries (they follow it in key order) into its row; entries
    whose document is not live become a row of their own (`live=False`), under its key."""
    row: CacheRow | None = None
    entries: list[tuple[str, str | None, int]] = []
    for item in items:
        if str(item.get("pk", "")).startswith(keys.INDEX_PK):
            doc_key, _, customer = str(item["s3_key"]).rpartition(keys.INDEX_KEY_SEP)
            if row is None or row.key != doc_key:
                if row is not None:
                    yield replace(row, index=tuple(entries))
                row, entries = CacheRow(doc_key, None, None, None, 0, None, live=False), []
            entries.append((customer, item.get("etag"), int(item.get("expires_at", 0))))
            continue
        if row is not None:
            yield replace(row, index=tuple(entries))
        row, entries = _row(item), []
    if row is not None:
        yield replace(row, index=tuple(entries))


def _row(item: dict[str, Any]) -> CacheRow:
    lm = item.get("s3_last_modified")
    pending = item.get("p_at") if item.get("p_tx") else None
    return CacheRow(
        key=str(item["s3_key"]),
        etag=item.get("etag"),
        size=int(item["size"]) if "size" in item else None,
        last_modified=datetime.fromtimestamp(int(lm) / 1000, UTC) if lm is not None else None,
        expires_at=int(item.get("expires_at", 0)),
        pending_at=datetime.fromtimestamp(int(pending) / 1000, UTC) if pending else None,
        customers=tuple(dict.fromkeys(str(c) for c in item.get("customers") or [])),
    )


__all__ = ["CacheRow", "S3Row", "cache_rows", "s3_rows"]

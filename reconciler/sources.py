"""Both sides of a shard, as iterators in S3 key order (UTF-8 bytes): never held in memory."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime

from engine import keys
from engine.exceptions import MonthShardsChangedError
from engine.store.cache import CacheStore
from engine.store.item import CacheItem, IndexEntry
from engine.store.objects import ObjectInfo, ObjectStore
from reconciler.shards import Shard, start_after


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


def s3_rows(objects: ObjectStore, shard: Shard) -> Iterator[ObjectInfo]:
    for info in objects.list(shard.prefix, start_after(shard)):
        if not shard.contains(info.key):
            if shard.stop is not None and info.key.encode() >= (shard.prefix + shard.stop).encode():
                return
            continue
        yield info


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
                if cache.holds_any(keys.TIME_INDEX, partition):
                    raise MonthShardsChangedError(
                        f"the cache holds entries in month bucket {partition!r}, which"
                        f" month_shards = {shards} never reads: the setting changed on a live"
                        " table. Put it back, or rebuild the cache for the new count"
                        " (docs/scaling.md)."
                    )


def _with_index(items: Iterable[CacheItem | IndexEntry]) -> Iterator[CacheRow]:
    """Fold each document's index entries (they follow it in key order) into its row; entries
    whose document is not live become a row of their own (`live=False`), under its key."""
    row: CacheRow | None = None
    entries: list[tuple[str, str | None, int]] = []
    for item in items:
        if isinstance(item, IndexEntry):
            if row is None or row.key != item.doc_key:
                if row is not None:
                    yield replace(row, index=tuple(entries))
                row, entries = CacheRow(item.doc_key, None, None, None, 0, None, live=False), []
            entries.append((item.customer, item.etag, item.expires_at))
            continue
        if row is not None:
            yield replace(row, index=tuple(entries))
        row, entries = _row(item), []
    if row is not None:
        yield replace(row, index=tuple(entries))


def _row(item: CacheItem) -> CacheRow:
    return CacheRow(
        key=str(item.s3_key),
        etag=item.etag,
        size=item.size,
        last_modified=item.s3_last_modified,
        expires_at=item.expires_at or 0,
        pending_at=item.pending_at,
        customers=tuple(dict.fromkeys(item.customers or ())),
    )


__all__ = ["CacheRow", "cache_rows", "s3_rows"]

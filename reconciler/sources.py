"""Both sides of a shard, as iterators in S3 key order (UTF-8 bytes): never held in memory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engine import keys
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
        for item in cache.key_index(partition):
            yield _row(item)


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
    )


__all__ = ["CacheRow", "S3Row", "cache_rows", "s3_rows"]

"""Shard lineage, pure: DynamoDB Streams shards close and split (every few hours, or when the
table's partitions split), and a child's records come after its parent's, so a consumer reads
a parent to its end before any of its children."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Shard:
    shard_id: str
    parent_id: str | None
    closed: bool


def parse_shards(raw: Iterable[dict[str, Any]]) -> list[Shard]:
    return [
        Shard(
            s["ShardId"],
            s.get("ParentShardId"),
            "EndingSequenceNumber" in s.get("SequenceNumberRange", {}),
        )
        for s in raw
    ]


def lineage_order(shards: list[Shard]) -> list[Shard]:
    """Parents before children (a parent missing from the list, trimmed away, counts as done)."""
    by_id = {s.shard_id: s for s in shards}
    ordered: list[Shard] = []
    placed: set[str] = set()

    def place(shard: Shard, path: frozenset[str]) -> None:
        if shard.shard_id in placed or shard.shard_id in path:
            return
        parent = by_id.get(shard.parent_id or "")
        if parent is not None:
            place(parent, path | {shard.shard_id})
        placed.add(shard.shard_id)
        ordered.append(shard)

    for shard in sorted(shards, key=lambda s: s.shard_id):
        place(shard, frozenset())
    return ordered


def ready(shards: list[Shard], finished: set[str]) -> list[Shard]:
    """Shards to read now: not finished, and their parent finished (or gone)."""
    ids = {s.shard_id for s in shards}
    return [
        s
        for s in lineage_order(shards)
        if s.shard_id not in finished
        and (s.parent_id is None or s.parent_id not in ids or s.parent_id in finished)
    ]

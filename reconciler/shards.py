"""Shards: contiguous key ranges of one type prefix, the unit of parallel work.

A shard is a range of the id's first character. On the S3 side that is a listing range; on the
cache side it is a set of key-index partitions (`kpk` = prefix + first character, see
`engine.keys.key_shard`). Every key under the prefix falls in exactly one shard, whatever its
first character (keys that are not valid document ids included).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

# Valid first characters of an id, in UTF-8 byte order (= S3 and DynamoDB order).
ID_CHARS = "".join(sorted("-._0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"))


@dataclass(frozen=True, slots=True)
class Shard:
    type: str
    prefix: str
    first: str | None  # keys >= prefix + first (None: from the start of the prefix)
    stop: str | None  # keys <  prefix + stop  (None: to the end of the prefix)
    chars: str  # the id characters whose key-index partitions belong here

    @property
    def name(self) -> str:
        return f"{self.prefix}[{self.first or ''}..{self.stop or ''})"

    def contains(self, key: str) -> bool:
        rest = key.encode()[len(self.prefix.encode()) :]
        low = self.first is None or rest >= self.first.encode()
        high = self.stop is None or rest < self.stop.encode()
        return key.startswith(self.prefix) and low and high


def plan(prefixes: dict[str, str], per_type: int) -> list[Shard]:
    """`per_type` shards per prefix, each an equal slice of the id characters."""
    shards = []
    per_type = max(1, min(per_type, len(ID_CHARS)))
    bounds = [n * len(ID_CHARS) // per_type for n in range(per_type + 1)]
    slices = [ID_CHARS[lo:hi] for lo, hi in itertools.pairwise(bounds)]
    for type_name, prefix in prefixes.items():
        for n, chars in enumerate(slices):
            first = None if n == 0 else chars[0]
            stop = None if n == len(slices) - 1 else slices[n + 1][0]
            shards.append(Shard(type_name, prefix, first, stop, chars))
    return shards


def start_after(shard: Shard) -> str:
    """A ListObjectsV2 StartAfter just below the shard's first key (rows below are dropped)."""
    if shard.first is None:
        return ""
    return shard.prefix + chr(ord(shard.first) - 1) + "\U0010ffff"

"""L1: an in-process LRU of gets, query pages and counts, bounded in bytes, DAX-like.

A value served from L1 is never older than `max_staleness_s` relative to the cache table: its
age is measured from the moment the read that produced it was *sent* (a read that began before
a write may return the old image; counting from its start bounds that too). Only what the
cache would serve is kept: committed, live, unexpired images (each value carries the time it
expires, and is dropped then). Invalidation:
- a write of this process (`invalidate`) drops the document's get at once, and every page and
  count (a page may hold any document; pages are cheap to refill);
- a fill that raced an invalidation is refused: each read takes a ticket (`ticket()`), and
  `put` keeps the value only if nothing was invalidated since the ticket was taken — so a
  process always reads its own writes;
- where the process runs the stream consumer, every record of a document invalidates it too
  (`on_stream_records`): other processes' writes are then seen sooner than the bound.

Hand-written rather than cachetools: the byte budget, the ticket check and the per-entry
deadline all sit in one lock with the LRU order.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from engine import metrics

Key = tuple[Hashable, ...]


@dataclass(slots=True)
class _Entry:
    value: Any
    size: int
    stale_at: float  # monotonic time after which it must not be served
    expires_at: float  # wall-clock epoch seconds (the cache entry's TTL): never served after


class L1Cache:
    def __init__(
        self,
        max_bytes: int,
        max_staleness_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.max_bytes = max_bytes
        self.max_staleness_s = max_staleness_s
        self._clock, self._wall = clock, wall
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()
        self._bytes = 0
        self._epoch = 0  # bumped by every invalidation (see `ticket`)
        self._lock = threading.Lock()

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def ticket(self) -> tuple[int, float]:
        """Take before the read whose result may be `put`: (epoch, the read's start time)."""
        with self._lock:
            return self._epoch, self._clock()

    def get(self, key: Key) -> Any | None:
        kind = str(key[0])
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and (
                self._clock() > entry.stale_at or self._wall() >= entry.expires_at
            ):
                self._drop(key)
                entry = None
            if entry is None:
                metrics.L1_REQUESTS.labels(kind, "miss").inc()
                return None
            self._entries.move_to_end(key)
            metrics.L1_REQUESTS.labels(kind, "hit").inc()
            return entry.value

    def put(
        self, key: Key, value: Any, size: int, ticket: tuple[int, float], expires_at: float
    ) -> bool:
        """Keep `value` unless something was invalidated since `ticket` was taken, it is
        already stale or expired, or it alone exceeds the budget."""
        epoch, started = ticket
        stale_at = started + self.max_staleness_s
        with self._lock:
            if (
                epoch != self._epoch
                or size > self.max_bytes
                or self._clock() >= stale_at
                or self._wall() >= expires_at
            ):
                return False
            if key in self._entries:
                self._drop(key)
            self._entries[key] = _Entry(value, size, stale_at, expires_at)
            self._bytes += size
            while self._bytes > self.max_bytes:
                oldest = next(iter(self._entries))
                metrics.L1_EVICTIONS.labels(str(oldest[0])).inc()
                self._drop(oldest)
            metrics.L1_BYTES.set(self._bytes)
            return True

    def invalidate(self, type_name: str, doc_id: str) -> None:
        """A document changed: its get and every page and count go."""
        with self._lock:
            self._epoch += 1
            for key in [k for k in self._entries if k[0] != "get" or k[1:] == (type_name, doc_id)]:
                self._drop(key)
            metrics.L1_BYTES.set(self._bytes)

    def on_stream_records(self, records: Iterable[Any]) -> None:
        """The stream consumer's hook: each changed document is invalidated (`pk` type#id;
        the reserved items, such as customer-index entries, move with their document)."""
        for record in records:
            pk = getattr(record, "pk", None)
            if pk and not pk.startswith("_docsync#") and "#" in pk:
                type_name, _, doc_id = pk.partition("#")
                self.invalidate(type_name, doc_id)

    def clear(self) -> None:
        with self._lock:
            self._epoch += 1
            self._entries.clear()
            self._bytes = 0
            metrics.L1_BYTES.set(0)

    def _drop(self, key: Key) -> None:
        entry = self._entries.pop(key)
        self._bytes -= entry.size

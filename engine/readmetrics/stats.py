"""The reader's in-process counters of gets: outcomes, backfills and latency buckets.

Hot path: `record` runs on every get (a lock, a bisect, a few adds), so it stays tiny; the
flusher (flush.py) carries what it counted to the cache table, where every process's counts
add up (cluster.py).
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import ClassVar

from engine.readmetrics.buckets import READ_LATENCY_MS


@dataclass
class ReadStats:
    """In-process read counters. Totals only grow; `take_delta()` hands what was added since
    the previous take to the cluster-wide flush (flush.py). Latencies go into fixed buckets so
    that flushes from many processes add up to exact percentiles' inputs."""

    # Upper bounds (ms) of the latency buckets; one more bucket holds everything above.
    BUCKETS_MS: ClassVar[tuple[float, ...]] = READ_LATENCY_MS

    @dataclass(frozen=True, slots=True)
    class Delta:
        """Counts added between two takes (or a sum of such deltas: they add up)."""

        hits: int = 0
        misses: int = 0
        s3_fallbacks: int = 0
        backfills: int = 0
        latency_sum_ms: float = 0.0
        buckets: tuple[int, ...] = ()

        @property
        def reads(self) -> int:
            return self.hits + self.misses + self.s3_fallbacks

        def empty(self) -> bool:
            return self.reads == 0 and self.backfills == 0

        def __add__(self, other: ReadStats.Delta) -> ReadStats.Delta:
            return self._combine(other, 1)

        def __sub__(self, other: ReadStats.Delta) -> ReadStats.Delta:
            return self._combine(other, -1)

        def _combine(self, other: ReadStats.Delta, sign: int) -> ReadStats.Delta:
            size = max(len(self.buckets), len(other.buckets))
            mine = (*self.buckets, *([0] * (size - len(self.buckets))))
            theirs = (*other.buckets, *([0] * (size - len(other.buckets))))
            return ReadStats.Delta(
                hits=self.hits + sign * other.hits,
                misses=self.misses + sign * other.misses,
                s3_fallbacks=self.s3_fallbacks + sign * other.s3_fallbacks,
                backfills=self.backfills + sign * other.backfills,
                latency_sum_ms=self.latency_sum_ms + sign * other.latency_sum_ms,
                buckets=tuple(a + sign * b for a, b in zip(mine, theirs, strict=True)),
            )

    hits: int = 0
    misses: int = 0
    s3_fallbacks: int = 0
    backfills: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=4096))
    latency_sum_ms: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(ReadStats.BUCKETS_MS) + 1))
    _taken: ReadStats.Delta | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, outcome: str, ms: float, backfilled: bool = False) -> None:
        slot = bisect.bisect_left(self.BUCKETS_MS, ms)
        with self._lock:
            if outcome == "hit":
                self.hits += 1
            elif outcome == "miss":
                self.misses += 1
            else:
                self.s3_fallbacks += 1
            self.backfills += int(backfilled)
            self.latencies_ms.append(ms)
            self.latency_sum_ms += ms
            self.buckets[slot] += 1

    def _totals(self) -> ReadStats.Delta:
        return ReadStats.Delta(
            self.hits,
            self.misses,
            self.s3_fallbacks,
            self.backfills,
            self.latency_sum_ms,
            tuple(self.buckets),
        )

    def take_delta(self) -> ReadStats.Delta:
        """What was recorded since the previous take; the next take starts from here."""
        with self._lock:
            totals = self._totals()
            delta = totals - self._taken if self._taken is not None else totals
            self._taken = totals
            return delta

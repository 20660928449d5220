"""Fixed-bucket histograms: they add up across processes and windows, and still give
percentiles (interpolated inside a bucket), which averages cannot. Bounds: buckets.py."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


def quantile(bounds: Sequence[float], counts: Sequence[int], q: float) -> float | None:
    """The q-quantile of bucket counts (`counts[i]` ≤ `bounds[i]`; one extra overflow bucket).

    Linear inside the bucket that holds the rank; the overflow bucket answers its lower bound.
    """
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(counts):
        if count and seen + count >= rank:
            if i >= len(bounds):
                return float(bounds[-1])
            low = bounds[i - 1] if i > 0 else 0.0
            return float(low + (bounds[i] - low) * max(0.0, rank - seen) / count)
        seen += count
    return float(bounds[-1])


@dataclass
class Histogram:
    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    peak: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    @property
    def count(self) -> int:
        return sum(self.counts)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.peak = max(self.peak, value)

    def quantile(self, q: float) -> float | None:
        """Interpolated inside its bucket, never above the largest value observed."""
        value = quantile(self.bounds, self.counts, q)
        return None if value is None else min(value, self.peak)

    def as_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "sum": round(self.total, 6),
            "max": round(self.peak, 6),
            "buckets": list(self.counts),
        }

    def summary(self, digits: int = 3) -> dict[str, Any]:
        """What a person reads: count, mean, p50, p99, max."""
        count = self.count

        def r(v: float | None) -> float | None:
            return None if v is None else round(v, digits)

        return {
            "count": count,
            "mean": r(self.total / count) if count else None,
            "p50": r(self.quantile(0.5)),
            "p99": r(self.quantile(0.99)),
            "max": r(self.peak) if count else None,
        }

    @classmethod
    def from_dict(cls, bounds: tuple[float, ...], data: dict[str, Any]) -> Histogram:
        counts = [int(c) for c in data.get("buckets", [])]
        if len(counts) != len(bounds) + 1:
            raise ValueError(f"{len(counts)} buckets, expected {len(bounds) + 1}")
        return cls(bounds, counts, float(data.get("sum", 0.0)), float(data.get("max", 0.0)))

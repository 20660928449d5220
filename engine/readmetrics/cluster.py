"""Cluster-wide read figures: every instance's flushes (new − old image of a metrics item)
added up, and what an operator reads from the sum (hit ratio, latency percentiles)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.readmetrics.histogram import quantile
from engine.readmetrics.item import delta_of_image
from engine.readmetrics.stats import ReadStats


def flush_delta(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> ReadStats.Delta:
    """What one flush added: new image − old image of the metrics item."""
    return delta_of_image(new) - delta_of_image(old)


@dataclass(frozen=True, slots=True)
class ClusterReads:
    """Every instance's reads, summed from the flushes seen since this consumer started."""

    total: ReadStats.Delta

    @property
    def hit_ratio(self) -> float | None:
        looked_up = self.total.hits + self.total.misses
        return round(self.total.hits / looked_up, 6) if looked_up else None

    def latency_ms(self, q: float) -> float | None:
        value = quantile(ReadStats.BUCKETS_MS, self.total.buckets, q)
        return None if value is None else round(value, 3)

    def as_dict(self) -> dict[str, Any]:
        t = self.total
        return {
            "hits": t.hits,
            "misses": t.misses,
            "s3_fallbacks": t.s3_fallbacks,
            "backfills": t.backfills,
            "hit_ratio": self.hit_ratio,
            "read_latency_ms": {"p50": self.latency_ms(0.5), "p99": self.latency_ms(0.99)},
        }

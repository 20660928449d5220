"""Read metrics: what the reader counts, how it reaches the cache table, and the cluster-wide
figures the stream consumers add up from it.

    buckets.py    every histogram's bucket bounds (Prometheus and the flushed items), once
    stats.py      ReadStats: the reader's in-process counters (the hot path)
    item.py       the reserved metrics item: its key, one flush's update, an image's counters
    flush.py      MetricsFlusher: deltas into the item through the cache store (limiter, breaker)
    capacity.py   the capacity units per operation kind that the same flush carries (stats)
    cluster.py    every instance's flushes added up: hit ratio, latency percentiles
    histogram.py  fixed-bucket histograms (they add up, and still give percentiles)

This package imports nothing from the capabilities (streams, events, reconciler): the reader
(core) records into it, and the stream consumers read from it. capacity.py reads
engine/awsmetrics.py, which imports buckets.py: this module does not import capacity.py, so
that importing buckets never needs awsmetrics (no import cycle).
"""

from __future__ import annotations

from engine.readmetrics.cluster import ClusterReads, flush_delta
from engine.readmetrics.histogram import Histogram, quantile
from engine.readmetrics.stats import ReadStats

__all__ = ["ClusterReads", "Histogram", "ReadStats", "flush_delta", "quantile"]

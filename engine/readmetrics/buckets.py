"""Every histogram's bucket bounds, in one place (Prometheus and the flushed read metrics).

Latency has ONE ladder (1-2.5-5 per decade, then 10 s and 30 s); each latency histogram takes
the stretch of it that its values fall in, so that two histograms never disagree on a bound
they share. Sync lag (seconds to an hour) and item counts are other quantities, with one set
each. Changing a bound changes the `le` labels that dashboards and docs/metrics.md rely on, and
the flushed read metrics' `lat_b<i>` slots: old and new flushes would no longer add up.
"""

from __future__ import annotations

LATENCY_LADDER_S: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


def latency_s(low: float, high: float) -> tuple[float, ...]:
    """The ladder's bounds from `low` to `high` (both on the ladder), in seconds."""
    if low not in LATENCY_LADDER_S or high not in LATENCY_LADDER_S:
        raise ValueError(f"{low}..{high} s is not a stretch of the latency ladder")
    return tuple(b for b in LATENCY_LADDER_S if low <= b <= high)


# Gets, event applies, write commits (engine/metrics.py), and the reader's own buckets.
READ_LATENCY_S = latency_s(0.001, 5.0)
# The reader's ReadStats and the flushed metrics items count in milliseconds.
READ_LATENCY_MS: tuple[float, ...] = tuple(b * 1000 for b in READ_LATENCY_S)
# AWS calls, retries included (engine/awsmetrics.py).
AWS_CALL_LATENCY_S = latency_s(0.001, 10.0)
# HTTP requests of `docsync serve` (engine/serve/http_metrics.py).
HTTP_LATENCY_S = latency_s(0.0025, 30.0)

# Sync lag, S3 write → cache (Prometheus and the analytics rows' histograms), seconds.
LAG_S: tuple[float, ...] = (
    0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0,
)  # fmt: skip

# Items per AWS response or DynamoDB page (engine/awsmetrics.py).
ITEMS: tuple[float, ...] = (0, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)

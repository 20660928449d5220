"""What the drivers do with the core's figures: Prometheus (the process registry, served on
`/metrics`) for the local consumer and the KCL processor, CloudWatch EMF lines in Lambda, and
the alarms' figures (`to_cloudwatch`) from every driver."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from engine import cloudwatch, keys, metrics
from engine.readmetrics.cluster import ClusterReads
from engine.streams.core import Derived

if TYPE_CHECKING:
    from aws_lambda_powertools.metrics import Metrics


def iterator_age_s(derived: Derived, now: datetime | None = None) -> float | None:
    if derived.newest is None:
        return None
    return max(0.0, ((now or datetime.now(UTC)) - derived.newest).total_seconds())


def to_prometheus(derived: Derived, cluster: ClusterReads, now: datetime | None = None) -> None:
    for event, n in derived.events.items():
        metrics.STREAM_RECORDS.labels(event).inc(n)
    if derived.duplicates:
        metrics.STREAM_DUPLICATES.inc(derived.duplicates)
    for (type_name, state), n in derived.ttl_expiries.items():
        metrics.TTL_EXPIRIES.labels(type_name, state).inc(n)
    for (type_name, source), n in derived.writes.items():
        metrics.CACHE_WRITES.labels(type_name, source).inc(n)
    for type_name, n in derived.fills().items():
        metrics.CACHE_FILLS.labels(type_name).inc(n)
    for touched, n in derived.partitions.items():
        index, _, partition = touched.partition(" ")
        if index != keys.CUSTOMER_INDEX:  # one series per customer bucket: too many
            metrics.GSI_PARTITION_WRITES.labels(index, partition).inc(n)
    for (type_name, change), n in derived.changes.items():
        metrics.DOCUMENT_CHANGES.labels(type_name, change).inc(n)
    for source, seconds in derived.sync_lag_s:
        metrics.STREAM_SYNC_LAG_SECONDS.labels(source).observe(seconds)
    for seconds in derived.write_commit_s:
        metrics.WRITE_COMMIT_SECONDS.observe(seconds)
    reads = derived.reads
    for outcome, n in (("hit", reads.hits), ("miss", reads.misses), ("bypass", reads.s3_fallbacks)):
        if n:
            metrics.CLUSTER_READS.labels(outcome).inc(n)
    if cluster.hit_ratio is not None:
        metrics.CLUSTER_HIT_RATIO.set(cluster.hit_ratio)
    for q, label in ((0.5, "0.5"), (0.99, "0.99")):
        value = cluster.latency_ms(q)
        if value is not None:
            metrics.CLUSTER_READ_LATENCY.labels(label).set(value / 1000)
    age = iterator_age_s(derived, now)
    if age is not None:
        metrics.STREAM_ITERATOR_AGE.set(age)


def to_emf(target: Metrics, derived: Derived, now: datetime | None = None) -> None:
    """Powertools Metrics (flushed by the handler): counts, and per-batch read figures that
    CloudWatch sums across invocations (hit ratio = hits / (hits + misses) in metric math)."""
    from aws_lambda_powertools.metrics import MetricUnit

    def count(name: str, value: float) -> None:
        if value:
            target.add_metric(name=name, unit=MetricUnit.Count, value=value)

    count("stream_records", derived.records)
    count("stream_duplicates", derived.duplicates)
    count("ttl_expiries", sum(derived.ttl_expiries.values()))
    count("cache_fills", sum(derived.fills().values()))
    for (_, source), n in derived.writes.items():
        count(f"cache_writes_{source}", n)
    for (_, change), n in derived.changes.items():
        count(f"document_{change}", n)
    count("cluster_hits", derived.reads.hits)
    count("cluster_misses", derived.reads.misses)
    count("cluster_s3_fallbacks", derived.reads.s3_fallbacks)
    for _, seconds in derived.sync_lag_s[:100]:  # EMF takes at most 100 values per metric
        target.add_metric(name="sync_lag_ms", unit=MetricUnit.Milliseconds, value=seconds * 1000)
    for seconds in derived.write_commit_s[:100]:
        target.add_metric(
            name="write_commit_ms", unit=MetricUnit.Milliseconds, value=seconds * 1000
        )
    batch = ClusterReads(derived.reads)
    for q, name in ((0.5, "read_latency_p50_ms"), (0.99, "read_latency_p99_ms")):
        value = batch.latency_ms(q)
        if value is not None:
            target.add_metric(name=name, unit=MetricUnit.Milliseconds, value=value)
    age = iterator_age_s(derived, now)
    if age is not None:
        target.add_metric(name="iterator_age_ms", unit=MetricUnit.Milliseconds, value=age * 1000)


def to_cloudwatch(
    derived: Derived, age_ms: float | None = None, now: datetime | None = None
) -> None:
    """The alarms' stream figures (engine/cloudwatch.py): the cluster-wide hits and misses in
    this batch's read-metric flushes, and the iterator age (`age_ms` when the driver knows it
    better, as KCL's millisBehindLatest; else from the batch's newest record)."""
    reads = derived.reads
    if not reads.empty():
        cloudwatch.record("CacheHits", reads.hits)
        cloudwatch.record("CacheMisses", reads.misses)
    if age_ms is None:
        age_s = iterator_age_s(derived, now)
        age_ms = None if age_s is None else age_s * 1000
    if age_ms is not None:
        cloudwatch.record("StreamIteratorAge", age_ms)

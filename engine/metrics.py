"""One Prometheus registry for the process (names prefixed `docsync_`).

Lambda handlers publish the same figures as CloudWatch EMF lines (Powertools Metrics);
long-running commands can serve this registry on `/metrics` (`--metrics-port`).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from engine.readmetrics.buckets import LAG_S, READ_LATENCY_S

REGISTRY = CollectorRegistry(auto_describe=True)


READS = Counter(
    "docsync_reads", "Gets by cache outcome (hit, miss, bypass).", ["cache"], registry=REGISTRY
)
READ_SECONDS = Histogram(
    "docsync_read_seconds", "Get latency.", ["cache"], buckets=READ_LATENCY_S, registry=REGISTRY
)
EVENTS = Counter("docsync_events", "S3 events by outcome.", ["outcome"], registry=REGISTRY)
EVENT_APPLY_SECONDS = Histogram(
    "docsync_event_apply_seconds",
    "Time to apply one S3 event.",
    buckets=READ_LATENCY_S,
    registry=REGISTRY,
)
SYNC_LAG_SECONDS = Histogram(
    "docsync_sync_lag_seconds",
    "S3 event time → cache updated, for applied events.",
    buckets=LAG_S,
    registry=REGISTRY,
)


# -- stream consumers (engine/streams): cluster-wide figures derived from the cache's stream --

STREAM_RECORDS = Counter(
    "docsync_stream_records",
    "Stream records processed, by event (INSERT, MODIFY, REMOVE).",
    ["event"],
    registry=REGISTRY,
)
STREAM_DUPLICATES = Counter(
    "docsync_stream_duplicate_records",
    "Records delivered again (at-least-once) and not counted twice.",
    registry=REGISTRY,
)
STREAM_MALFORMED = Counter(
    "docsync_stream_malformed_records",
    "Undecodable stream records, sent to the dead-letter path.",
    registry=REGISTRY,
)
STREAM_ITERATOR_AGE = Gauge(
    "docsync_stream_iterator_age_seconds",
    "Age of the newest record of the last batch: how far behind the consumer is.",
    registry=REGISTRY,
)
STREAM_TRIMMED = Counter(
    "docsync_stream_trimmed",
    "Times records were lost to the stream's retention (run a reconcile).",
    registry=REGISTRY,
)
STREAM_LEASE_HELD = Gauge(
    "docsync_stream_lease_held",
    "1 while this local consumer holds the stream's lease, 0 on standby.",
    registry=REGISTRY,
)
TTL_EXPIRIES = Counter(
    "docsync_ttl_expiries",
    "Cache entries removed by DynamoDB TTL, by type and state (live, deleted).",
    ["type", "state"],
    registry=REGISTRY,
)
GSI_PARTITION_WRITES = Counter(
    "docsync_gsi_partition_writes",
    "Committed writes per month-bucket partition of the time and status indexes (each takes"
    " ~1,000/s; topk(rate(...)) finds the hot one). Customer buckets: `docsync stats`.",
    ["index", "partition"],
    registry=REGISTRY,
)
CACHE_WRITES = Counter(
    "docsync_cache_writes",
    "Committed cache changes of every instance, by type and sync_source.",
    ["type", "source"],
    registry=REGISTRY,
)
CACHE_FILLS = Counter(
    "docsync_cache_fills",
    "Cache fills after a miss (backfills) of every instance, by type.",
    ["type"],
    registry=REGISTRY,
)
DOCUMENT_CHANGES = Counter(
    "docsync_document_changes",
    "Documents created, updated, deleted as the cache saw it, by type.",
    ["type", "change"],
    registry=REGISTRY,
)
STREAM_SYNC_LAG_SECONDS = Histogram(
    "docsync_stream_sync_lag_seconds",
    "S3 write (LastModified) → cache commit, for every change, by sync_source.",
    ["source"],
    buckets=LAG_S,
    registry=REGISTRY,
)
WRITE_COMMIT_SECONDS = Histogram(
    "docsync_write_commit_seconds",
    "Write pipeline: intent → commit of every instance's writes.",
    buckets=READ_LATENCY_S,
    registry=REGISTRY,
)
CLUSTER_READS = Counter(
    "docsync_cluster_reads",
    "Gets of every instance (their flushed read metrics), by cache outcome.",
    ["cache"],
    registry=REGISTRY,
)
CLUSTER_HIT_RATIO = Gauge(
    "docsync_cluster_hit_ratio",
    "hits / (hits + misses) of every instance, since this consumer started.",
    registry=REGISTRY,
)
CLUSTER_READ_LATENCY = Gauge(
    "docsync_cluster_read_latency_seconds",
    "Get latency percentiles of every instance, from flushed histogram buckets.",
    ["quantile"],
    registry=REGISTRY,
)
METRICS_FLUSHES = Counter(
    "docsync_metrics_flushes",
    "Flushes of this process's read metrics to the cache table, by result.",
    ["result"],
    registry=REGISTRY,
)
STREAM_REPAIRS = Counter(
    "docsync_stream_repairs",
    "Keys repaired from the stream (a stuck intent, a re-check), by outcome.",
    ["reason", "outcome"],
    registry=REGISTRY,
)
STREAM_PENDING_KEYS = Gauge(
    "docsync_stream_pending_keys",
    "Keys the stream consumer holds for a repair once their deadline passes.",
    registry=REGISTRY,
)
HISTORY_ENTRIES = Counter(
    "docsync_history_entries",
    "History entries stored from the stream (a redelivery stores its entry again).",
    registry=REGISTRY,
)

BREAKER_STATE = Gauge(
    "docsync_circuit_breaker_state",
    "1 for each breaker's current state (closed, open, half_open), 0 for the others.",
    ["breaker", "state"],
    registry=REGISTRY,
)


def serve(port: int, addr: str = "127.0.0.1") -> None:
    """Serve `/metrics` from a daemon thread."""
    start_http_server(port, addr=addr, registry=REGISTRY)


# -- L1: the in-process cache of gets, query pages and counts (engine/l1.py) --

L1_REQUESTS = Counter(
    "docsync_l1_requests",
    "L1 lookups by kind (get, query, count) and outcome (hit, miss).",
    ["kind", "outcome"],
    registry=REGISTRY,
)
L1_EVICTIONS = Counter(
    "docsync_l1_evictions",
    "L1 entries evicted to stay within the byte budget, by kind.",
    ["kind"],
    registry=REGISTRY,
)
L1_BYTES = Gauge("docsync_l1_bytes", "Bytes held by L1.", registry=REGISTRY)

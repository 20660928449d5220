"""One Prometheus registry for the process (names prefixed `docsync_`).

Lambda handlers publish the same figures as CloudWatch EMF lines (Powertools Metrics);
long-running commands can serve this registry on `/metrics` (`--metrics-port`).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_LAG = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)

READS = Counter(
    "docsync_reads", "Gets by cache outcome (hit, miss, bypass).", ["cache"], registry=REGISTRY
)
READ_SECONDS = Histogram(
    "docsync_read_seconds", "Get latency.", ["cache"], buckets=_LATENCY, registry=REGISTRY
)
EVENTS = Counter("docsync_events", "S3 events by outcome.", ["outcome"], registry=REGISTRY)
EVENT_APPLY_SECONDS = Histogram(
    "docsync_event_apply_seconds",
    "Time to apply one S3 event.",
    buckets=_LATENCY,
    registry=REGISTRY,
)
SYNC_LAG_SECONDS = Histogram(
    "docsync_sync_lag_seconds",
    "S3 event time → cache updated, for applied events.",
    buckets=_LAG,
    registry=REGISTRY,
)


def serve(port: int, addr: str = "127.0.0.1") -> None:
    """Serve `/metrics` from a daemon thread."""
    start_http_server(port, addr=addr, registry=REGISTRY)

"""Stream consumers: every change of the cache flows through its DynamoDB stream (or the
table's Kinesis destination) into the figures an operator watches and into analytics.

    records.py    decode stream / Lambda / Kinesis records into frozen ChangeRecords
    core.py       the pure processing shared by every driver (idempotent per sequence number)
    analytics.py  tumbling windows per type, customer, status; rows that add up
    hotspots.py   writes per GSI partition (month and customer buckets): the busiest ones
    shards.py     shard lineage: parents before children
    consumer.py   `docsync consume`: one active consumer per stream, standby takeover (the
                  lease, checkpoints and stream reads: engine/store/leases.py, stream.py)
    emission.py   the consumer's two-phase checkpoints: analytics exactly once in effect
    lambda_handler.py   deprecated path of engine/lambdas/stream.py (the Lambda handlers)
    kcl.py        KCL 3 record processor for the Kinesis destination (multilang.py: protocol)
    sinks.py      analytics rows and dead letters, one named object per emission: S3 (reserved
                  prefix) or a local directory; a retried emission supersedes its identity
    exporters.py  Prometheus and CloudWatch EMF
    pending.py    keys to repair (a stuck intent, a re-check) with deadlines, from the images
    repair.py     the targeted repair of one key through engine/sync.py, S3 first
    history.py    one history entry per committed change, from one record's images
    effects.py    history stored and due repairs run, the same in every driver
    trends.py     changes per document and time in each status, from history
    stats.py      `docsync stats`; demo.py: the demo's closing section
    config.py     DOCSYNC_STREAMS_* settings

The read metrics (the reader's counts, their flush, the cluster-wide sums, histograms and
bucket bounds) are in engine/readmetrics/: the consumers read flushes, they do not make them.

Prometheus metrics (engine/metrics.py): docsync_stream_records_total{event},
docsync_stream_duplicate_records_total, docsync_stream_malformed_records_total,
docsync_stream_iterator_age_seconds, docsync_stream_trimmed_total, docsync_stream_lease_held,
docsync_ttl_expiries_total{type,state}, docsync_cache_writes_total{type,source},
docsync_cache_fills_total{type}, docsync_document_changes_total{type,change},
docsync_stream_sync_lag_seconds{source}, docsync_write_commit_seconds,
docsync_cluster_reads_total{cache}, docsync_cluster_hit_ratio,
docsync_cluster_read_latency_seconds{quantile}, docsync_metrics_flushes_total{result},
docsync_stream_repairs_total{reason,outcome}, docsync_stream_pending_keys,
docsync_history_entries_total, docsync_gsi_partition_writes_total{index,partition}.
"""

from __future__ import annotations

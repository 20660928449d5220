"""`docsync stats`: the figures an operator watches, gathered from where they are kept.

- hit/miss and read latency: the reserved metrics items of the cache table (every instance's
  flushes), read by key for each window of the range (BatchGetItem, no scan);
- sync lag, TTL expiries, fills, writes by source, changes and status transitions: the
  analytics rows (S3 under the reserved prefix, or the local directory), merged;
- iterator age and the consumer's state: the consumer's lease item in the leases table;
- changes per document, time in each status and between statuses: the history table (one
  scan; engine/streams/trends.py), for what completed in the range;
- the busiest GSI partitions: the analytics rows' writes per partition (streams/hotspots.py);
- capacity per operation kind: the same metrics items (every instance's flushes carry the
  units it consumed per kind, engine/readmetrics/capacity.py), for the range.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from loguru import logger
from rich.console import Console
from rich.table import Table

from engine.aws import AwsClients
from engine.awsmetrics import KINDS
from engine.exceptions import StoreError
from engine.keys import tumbling_start
from engine.readmetrics import capacity
from engine.readmetrics.buckets import LAG_S
from engine.readmetrics.cluster import ClusterReads
from engine.readmetrics.histogram import Histogram
from engine.readmetrics.item import delta_of_image, metrics_pk
from engine.readmetrics.stats import ReadStats
from engine.settings import Settings, StreamSettings
from engine.store.leases import batch_get, read_lease
from engine.store.stream import StreamStore
from engine.store.values import plain
from engine.streams.analytics import TypeWindow, merge_rows
from engine.streams.hotspots import busiest
from engine.streams.sinks import ANALYTICS, build_sink
from engine.streams.trends import trends


def read_metrics(
    clients: AwsClients, table: str, window_s: int, since: datetime, until: datetime
) -> tuple[ReadStats.Delta, capacity.Capacity]:
    """The sum of every metrics item whose window starts in [since, until]: the reads, and the
    capacity units per operation kind."""
    first = tumbling_start(since.timestamp(), window_s)
    keys = [
        {"pk": {"S": metrics_pk(w)}} for w in range(first, int(until.timestamp()) + 1, window_s)
    ]
    items = [plain(item) for item in batch_get(clients.dynamodb, table, keys)]
    reads = sum((delta_of_image(item) for item in items), delta_of_image(None))
    return reads, capacity.total(*(capacity.of_image(item) for item in items))


def consumer_state(clients: AwsClients, settings: Settings) -> dict[str, Any] | None:
    arn = StreamStore(clients).latest_arn(settings.table)
    if not arn:
        return None
    lease = read_lease(clients.dynamodb, settings.leases_table, arn)
    if lease is None:
        return None
    status = lease.get("status") or {}
    expires = float(lease.get("expires", 0))
    return {
        "owner": lease.get("owner"),
        "active": expires > datetime.now(UTC).timestamp(),
        "renewed_at": _iso(lease.get("renewed_at")),
        "records": status.get("records"),
        "iterator_age_s": status.get("iterator_age_s"),
        "shards": status.get("shards"),
        "trimmed": status.get("trimmed"),
        "checkpointed_at": _iso(status.get("checkpointed_at")),
    }


def _iso(epoch: Any) -> str | None:
    if not isinstance(epoch, int | float):
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def gather(
    settings: Settings,
    config: StreamSettings,
    clients: AwsClients,
    since: datetime,
    until: datetime | None = None,
    windows: int = 10,
    history: bool = True,
) -> dict[str, Any]:
    until = until or datetime.now(UTC)
    total, units = read_metrics(clients, settings.table, config.metrics_window_s, since, until)
    reads = ClusterReads(total)
    sink = build_sink(settings, config, clients, producer="stats")
    earliest = tumbling_start(since.timestamp(), config.window_s)
    rows = [
        row for row in sink.read(ANALYTICS, since) if _epoch(row.get("window_start")) >= earliest
    ]
    merged = merge_rows(rows)
    lag = Histogram(LAG_S)
    counts: Counter[str] = Counter()
    writes: Counter[str] = Counter()
    transitions: Counter[str] = Counter()
    for row in merged:
        window = TypeWindow.from_row(row)
        counts.update(window.counts)
        writes.update(window.writes)
        transitions.update(window.transitions)
        lag.counts = [a + b for a, b in zip(lag.counts, window.sync_lag.counts, strict=True)]
        lag.total += window.sync_lag.total
        lag.peak = max(lag.peak, window.sync_lag.peak)
    consumer = consumer_state(clients, settings)
    cluster = reads.as_dict()
    count = reads.total.reads
    cluster["read_latency_ms"]["mean"] = (
        round(reads.total.latency_sum_ms / count, 3) if count else None
    )
    cluster["read_latency_ms"]["count"] = count
    return {
        "since": _iso(since.timestamp()),
        "until": _iso(until.timestamp()),
        **cluster,
        "sync_lag_s": lag.summary(),
        "iterator_age_s": (consumer or {}).get("iterator_age_s"),
        "ttl_expiries": counts["ttl_expiries"],
        "fills": counts["fills"],
        "writes": dict(sorted(writes.items())),
        "changes": {k: counts[k] for k in ("creates", "updates", "deletes")},
        "transitions": dict(transitions.most_common()),
        "consumer": consumer,
        "windows": [_compact(row) for row in merged[:windows]],
        "hot_partitions": busiest(merged),
        "capacity_by_kind": capacity_figures(units),
        "history": _history(settings, clients, since, until) if history else None,
        "sources": {
            "read_metrics": f"dynamodb:{settings.table} ({config.metrics_window_s} s items)",
            "analytics": config.analytics_dir
            or f"s3://{settings.bucket}/{settings.reserved_prefix}streams/{ANALYTICS}/",
        },
    }


def capacity_figures(units: capacity.Capacity) -> dict[str, Any]:
    """Capacity units per operation kind that every process flushed for the range (serve,
    listen, the consumers, a reconcile's exit flush). Lambdas report theirs as EMF instead:
    the dashboard's widget."""
    return {
        "scope": "cluster",
        **{
            kind: {side: round(v, 3) for side, v in units[kind].items()}
            for kind in KINDS
            if kind in units
        },
    }


def _history(
    settings: Settings, clients: AwsClients, since: datetime, until: datetime
) -> dict[str, Any] | None:
    from engine.store.history import HistoryStore

    store = HistoryStore(clients.dynamodb, settings.history_table)
    try:
        return trends(store.scan(), since.timestamp(), until.timestamp())
    except StoreError as exc:  # e.g. a deployment from before the history table
        logger.bind(op="stats.history").warning("no history figures: {}", exc)
        return None


def _epoch(value: Any) -> float:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _compact(row: dict[str, Any]) -> dict[str, Any]:
    window = TypeWindow.from_row(row)
    return {
        "window_start": row["window_start"],
        "window_s": row["window_s"],
        "type": row["type"],
        **{k: window.counts[k] for k in ("creates", "updates", "deletes", "ttl_expiries", "fills")},
        "transitions": row.get("transitions", {}),
        "customers": len(row.get("customers", {})),
        "sync_lag_p50_s": window.sync_lag.summary()["p50"],
    }


def render_text(data: dict[str, Any], out: Console | None = None) -> None:
    """The same figures, for a person."""
    out = out or Console(highlight=False)
    lat, lag = data["read_latency_ms"], data["sync_lag_s"]
    ratio = data["hit_ratio"]
    figures = Table(title=f"docsync stats {data['since']} → {data['until']}", show_header=False)
    figures.add_column("figure")
    figures.add_column("value", justify="right")
    consumer = data.get("consumer") or {}
    rows: list[tuple[str, Any]] = [
        ("hit ratio", "—" if ratio is None else f"{ratio:.1%}"),
        (
            "hits / misses / S3 fallbacks",
            f"{data['hits']} / {data['misses']} / {data['s3_fallbacks']}",
        ),
        ("read latency p50 / p99 (ms)", f"{_num(lat['p50'])} / {_num(lat['p99'])}"),
        (
            "sync lag p50 / p99 / max (s)",
            f"{_num(lag['p50'])} / {_num(lag['p99'])} / {_num(lag['max'])}",
        ),
        ("iterator age (s)", _num(data["iterator_age_s"])),
        ("TTL expiries", data["ttl_expiries"]),
        ("fills (misses backfilled)", data["fills"]),
        ("writes by source", ", ".join(f"{k} {v}" for k, v in data["writes"].items()) or "—"),
        ("creates / updates / deletes", " / ".join(str(v) for v in data["changes"].values())),
        (
            "consumer",
            f"{consumer.get('owner')} ({'active' if consumer.get('active') else 'stopped'})"
            if consumer
            else "none yet",
        ),
    ]
    for name, value in rows:
        figures.add_row(name, str(value))
    out.print(figures)
    _render_load(data, out)
    if data["windows"]:
        view = Table(title="latest analytics windows")
        for column in (
            "window",
            "type",
            "creates",
            "updates",
            "deletes",
            "ttl",
            "fills",
            "transitions",
        ):
            view.add_column(column)
        for w in data["windows"]:
            view.add_row(
                w["window_start"],
                w["type"],
                *(str(w[k]) for k in ("creates", "updates", "deletes", "ttl_expiries", "fills")),
                ", ".join(f"{k} {v}" for k, v in w["transitions"].items()) or "—",
            )
        out.print(view)
    _render_history(data.get("history"), out)


def _render_load(data: dict[str, Any], out: Console) -> None:
    """Where the load lands: the busiest GSI partitions, and capacity per operation kind."""
    hot = data.get("hot_partitions") or []
    if hot:
        view = Table(title="busiest GSI partitions (peak analytics window)")
        for column in ("index", "partition", "writes", "peak writes/s", "of ~1,000/s"):
            view.add_column(column)
        for p in hot:
            view.add_row(
                p["index"],
                p["partition"],
                str(p["writes"]),
                _num(p["peak_writes_per_s"]),
                f"{p['of_limit']:.1%}",
            )
        out.print(view)
    capacity = {k: v for k, v in (data.get("capacity_by_kind") or {}).items() if k != "scope"}
    if capacity:
        view = Table(title="capacity units by operation kind (every process's flushes)")
        for column in ("kind", "read", "write"):
            view.add_column(column)
        for kind, sides in capacity.items():
            view.add_row(kind, _num(sides.get("read", 0.0)), _num(sides.get("write", 0.0)))
        out.print(view)


def _render_history(history: dict[str, Any] | None, out: Console) -> None:
    if not history or not history["documents"]:
        return
    view = Table(title="from history: changes per document")
    for column in ("type", "documents", "changes", "median", "max"):
        view.add_column(column)
    for type_name, c in history["changes_per_document"].items():
        view.add_row(type_name, *(str(c[k]) for k in ("documents", "changes", "median", "max")))
    out.print(view)
    for key, title in (("time_in_status", "time in status"), ("transitions", "status → status")):
        spans = Table(title=f"from history: {title} (s)")
        for column in ("type", "status", "count", "median", "p90", "max"):
            spans.add_column(column)
        for type_name, by_name in history[key].items():
            for name, f in by_name.items():
                spans.add_row(
                    type_name,
                    name,
                    str(f["count"]),
                    *(_num(f[k]) for k in ("median_s", "p90_s", "max_s")),
                )
        if spans.row_count:
            out.print(spans)


def _num(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:,.3f}" if isinstance(value, float) else str(value)

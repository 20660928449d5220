"""The local consumer against moto's real DynamoDB stream: scripted workloads with known
answers, the read-metrics flush, the reserved metrics item, restart and standby."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from engine.app import Engine
from engine.breaker import CircuitBreaker
from engine.documents import Document, parse_document
from engine.ratelimit import TokenBucket
from engine.reader import Query
from engine.readmetrics.flush import MetricsFlusher
from engine.readmetrics.item import METRICS_PK
from engine.settings import Settings, StreamSettings
from engine.store.cache import CacheStore
from engine.store.errors import is_outage
from engine.store.item import INDEX_KEYS, deserialize
from engine.streams.consumer import LocalConsumer
from engine.streams.sinks import ANALYTICS, FileRowSink
from engine.streams.stats import gather

BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def doc(
    doc_id: str, *, status: str = "draft", customers: tuple[str, ...] = ("acme",), n: int = 0
) -> Document:
    return parse_document(
        {
            "id": doc_id,
            "object_type": "change",
            "title": f"Patch window {n}",
            "customer_codes": list(customers),
            "status": status,
            "created_at": (BASE - timedelta(days=20)).isoformat(),
            "modified_at": (BASE + timedelta(minutes=n)).isoformat(),
        }
    )


def config(tmp_path: Path, **overrides: Any) -> StreamSettings:
    values: dict[str, Any] = {
        "analytics_dir": str(tmp_path / "analytics"),
        "lease_ttl_s": 3,
        "idle_wait_s": 0.05,
        "checkpoint_interval_s": 0.2,
    }
    values.update(overrides)
    return StreamSettings(**values)


def drain(settings: Settings, engine: Engine, conf: StreamSettings) -> dict[str, Any]:
    return LocalConsumer(settings, conf, engine.clients).run(drain=True).as_dict()


def stream_records(engine: Engine) -> list[dict[str, Any]]:
    """Every record of the table's stream, by a raw GetRecords loop."""
    streams = engine.clients.client("dynamodbstreams")
    arn = engine.clients.dynamodb.describe_table(TableName=engine.settings.table)["Table"][
        "LatestStreamArn"
    ]
    (shard,) = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records: list[dict[str, Any]] = []
    while True:
        response = streams.get_records(ShardIterator=iterator)
        if not response["Records"]:
            return records
        records.extend(response["Records"])
        iterator = response["NextShardIterator"]


def seven_hits_three_misses(engine: Engine) -> list[Document]:
    docs = [doc(f"HM-{n}", n=n) for n in range(10)]
    for d in docs[:7]:
        engine.pipeline.put(d)  # cached
    for d in docs[7:]:  # written by another application: S3 only, the cache is cold
        engine.objects.put(f"{engine.settings.prefixes['change']}{d.id}.json", d.body)
    for d in docs:
        engine.reader.get("change", d.id)
    return docs


def test_hit_ratio_through_the_local_consumer(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    seven_hits_three_misses(engine)
    stats = engine.reader.stats
    assert (stats.hits, stats.misses) == (7, 3)
    flusher = MetricsFlusher(engine.cache, stats)
    assert flusher.flush() is not None and flusher.flush() is None  # nothing new: no write
    summary = drain(settings, engine, config(tmp_path))
    cluster = summary["cluster"]
    assert (cluster["hits"], cluster["misses"], cluster["hit_ratio"]) == (7, 3, 0.7)
    assert cluster["backfills"] == 3
    assert cluster["read_latency_ms"]["p50"] is not None
    assert summary["fills"] == 3 and summary["writes"] == {"backfill": 3, "write": 7}
    assert summary["creates"] == 10 and summary["updates"] == 0 and summary["deletes"] == 0
    assert summary["role"] == "active" and summary["shards"] == 1 and summary["malformed"] == 0


def test_known_changes_per_customer_and_status(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    a = doc("CS-a", customers=("acme", "globex"))
    b = doc("CS-b", customers=("acme",))
    c = doc("CS-c", customers=("initech",))
    for d in (a, b, c):
        engine.pipeline.put(d)
    engine.pipeline.put(doc("CS-a", status="approved", customers=("acme", "globex"), n=1))
    engine.pipeline.put(doc("CS-b", status="approved", customers=("acme",), n=1))
    engine.pipeline.put(doc("CS-b", status="closed", customers=("acme",), n=2))
    engine.pipeline.put(doc("CS-b", status="closed", customers=("acme",), n=2))  # unchanged
    engine.pipeline.delete("change", "CS-c")
    conf = config(tmp_path)
    summary = drain(settings, engine, conf)
    assert (summary["creates"], summary["updates"], summary["deletes"]) == (3, 3, 1)
    assert summary["writes"] == {"write": 7}
    rows = list(
        FileRowSink(conf.analytics_dir or "", "test").read(
            ANALYTICS, datetime.now(UTC) - timedelta(hours=1)
        )
    )
    from engine.streams.analytics import merge_rows

    # every window into one (the workload may straddle a minute boundary)
    (row,) = merge_rows([r | {"window_start": "2000-01-01T00:00:00Z"} for r in rows])
    assert row["customers"] == {
        "acme": {"creates": 2, "updates": 3, "deletes": 0},
        "globex": {"creates": 1, "updates": 1, "deletes": 0},
        "initech": {"creates": 1, "updates": 0, "deletes": 1},
    }
    assert row["statuses"] == {
        "approved": {"creates": 0, "updates": 2, "deletes": 0},
        "closed": {"creates": 0, "updates": 1, "deletes": 0},
        "draft": {"creates": 3, "updates": 0, "deletes": 1},
    }
    assert row["transitions"] == {"approved→closed": 1, "draft→approved": 2}
    assert row["sync_lag_s"]["count"] == 7


def test_restart_resumes_with_nothing_twice(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    for n in range(4):
        engine.pipeline.put(doc(f"RS-{n}", n=n))
    conf = config(tmp_path)
    first = drain(settings, engine, conf)
    assert first["creates"] == 4
    again = drain(settings, engine, conf)
    assert again["records"] == 0 and again["get_records"] >= 1
    for n in range(4, 6):
        engine.pipeline.put(doc(f"RS-{n}", n=n))
    third = drain(settings, engine, conf)
    assert third["creates"] == 2 and third["duplicates"] == 0
    assert first["records"] + again["records"] + third["records"] == len(stream_records(engine))
    stats = gather(settings, conf, engine.clients, datetime.now(UTC) - timedelta(hours=1))
    assert stats["changes"] == {"creates": 6, "updates": 0, "deletes": 0}
    assert stats["consumer"]["active"] is False  # released at the end of the drain


def test_metrics_item_is_reserved_ttld_and_outside_every_index(
    settings: Settings, engine: Engine
) -> None:
    from reconciler.run import Reconciler

    seven_hits_three_misses(engine)
    MetricsFlusher(engine.cache, engine.reader.stats, ttl_days=7).flush()
    items = [i for i in engine.cache.scan_all() if str(i["pk"]).startswith(METRICS_PK)]
    (item,) = items
    assert not set(INDEX_KEYS) & set(item)
    assert int(item["expires_at"]) > time.time() + 6 * 86400
    assert (item["hits"], item["misses"], item["backfills"], item["flushes"]) == (7, 3, 3, 1)
    assert sum(int(item.get(f"lat_b{i}", 0)) for i in range(13)) == 10
    page = engine.reader.query(Query(types=("change",), limit=100))
    assert len(page.items) == 10  # the metrics item is in no index
    result = Reconciler(engine).run("report")
    assert result.as_dict()["counts"]["orphaned"] == 0


def test_a_retried_flush_is_not_counted_twice(settings: Settings, engine: Engine) -> None:
    stats = engine.reader.stats
    stats.record("hit", 2.0)
    flusher = MetricsFlusher(engine.cache, stats)
    delta = stats.take_delta()
    flusher._write("flush-1", 1_800_000_000, delta)
    flusher._write("flush-1", 1_800_000_000, delta)  # e.g. botocore's retry after a timeout
    flusher._write("flush-2", 1_800_000_000, delta)
    raw = engine.clients.dynamodb.get_item(
        TableName=settings.table, Key={"pk": {"S": METRICS_PK + "2027-01-15T08:00:00Z"}}
    )["Item"]
    item = deserialize(raw)
    assert (item["hits"], item["flushes"], item["flush_ids"]) == (2, 2, {"flush-1", "flush-2"})


class _FailingOnce:
    """A DynamoDB client whose first update_item fails as an outage would."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.failed = False

    def update_item(self, **kwargs: Any) -> Any:
        if not self.failed:
            self.failed = True
            raise EndpointConnectionError(endpoint_url="http://nowhere")
        return self._client.update_item(**kwargs)


def test_failed_flush_is_retried_as_it_was(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    from engine.exceptions import CacheUnavailableError

    stats = engine.reader.stats
    client = _FailingOnce(engine.clients.dynamodb)
    cache = CacheStore(client, settings.table, TokenBucket(100, 10, 1.0), _breaker())  # type: ignore[arg-type]
    flusher = MetricsFlusher(cache, stats)
    for _ in range(3):
        stats.record("miss", 12.0)
    with pytest.raises(CacheUnavailableError):
        flusher.flush()
    stats.record("hit", 1.0)
    first = flusher.flush()  # the failed delta, as it was
    second = flusher.flush()  # then what came since
    assert first is not None and (first.misses, first.hits) == (3, 0)
    assert second is not None and (second.misses, second.hits) == (0, 1)
    summary = drain(settings, engine, config(tmp_path))
    assert (summary["cluster"]["hits"], summary["cluster"]["misses"]) == (1, 3)


def _breaker(fail_max: int = 5, clock: Callable[[], float] = time.monotonic) -> CircuitBreaker:
    return CircuitBreaker(fail_max, 60.0, is_outage, clock=clock, name="test-flush")


def test_flush_goes_through_the_cache_breaker(settings: Settings, engine: Engine) -> None:
    """The flush is a cache call like any other: while the breaker is open it makes no AWS call
    (the delta waits, and lands once DynamoDB is back)."""
    from engine.exceptions import CacheUnavailableError

    stats = engine.reader.stats
    client = _Counting(engine.clients.dynamodb)
    now = [0.0]
    breaker = _breaker(1, lambda: now[0])
    breaker.on_error(EndpointConnectionError(endpoint_url="http://nowhere"))  # open
    cache = CacheStore(client, settings.table, TokenBucket(100, 10, 1.0), breaker)  # type: ignore[arg-type]
    flusher = MetricsFlusher(cache, stats)
    stats.record("hit", 3.0)
    with pytest.raises(CacheUnavailableError, match="circuit breaker open"):
        flusher.flush()
    assert client.updates == 0
    now[0] += 61  # past reset_s: the next call is the half-open trial
    carried = flusher.flush()
    assert carried is not None and carried.hits == 1 and client.updates == 1


class _Counting:
    def __init__(self, client: Any) -> None:
        self._client = client
        self.updates = 0

    def update_item(self, **kwargs: Any) -> Any:
        self.updates += 1
        return self._client.update_item(**kwargs)


def test_periodic_flush_and_flush_at_stop(settings: Settings, engine: Engine) -> None:
    stats = engine.reader.stats
    with MetricsFlusher(engine.cache, stats, interval_s=0.05) as flusher:
        stats.record("hit", 1.0)
        deadline = time.monotonic() + 5
        while flusher.flushes == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        stats.record("miss", 1.0)  # flushed by stop()
    items = [i for i in engine.cache.scan_all() if str(i["pk"]).startswith(METRICS_PK)]
    assert sum(int(i["hits"]) for i in items) == 1 and sum(int(i["misses"]) for i in items) == 1
    assert flusher.flushes >= 2


@pytest.fixture
def running(settings: Settings, engine: Engine, tmp_path: Path) -> Iterator[list[LocalConsumer]]:
    started: list[tuple[LocalConsumer, threading.Thread]] = []

    def start(owner: str) -> LocalConsumer:
        # a lease long enough that a stalled machine never lets the standby take over early
        c = LocalConsumer(settings, config(tmp_path, lease_ttl_s=6), engine.clients, owner=owner)
        t = threading.Thread(target=c.run, daemon=True)
        t.start()
        started.append((c, t))
        return c

    consumers: list[Any] = [start]
    yield consumers
    for c, t in started:
        c.stop.set()
        t.join(timeout=10)


def wait_for(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_standby_takes_over_when_the_active_one_stops(
    settings: Settings, engine: Engine, running: list[Any]
) -> None:
    start = running[0]
    first = start("first")
    wait_for(lambda: first.summary.role == "active")
    second = start("second")
    time.sleep(0.5)
    assert second.summary.role == "standby"
    engine.pipeline.put(doc("SB-1"))
    wait_for(lambda: first.core.totals["creates"] == 1)
    first.stop.set()  # a clean stop releases the lease at once
    wait_for(lambda: second.summary.role == "active", timeout=20)
    engine.pipeline.put(doc("SB-2", n=1))
    wait_for(lambda: second.core.totals["creates"] == 1)
    total = len(stream_records(engine))
    wait_for(lambda: first.core.totals["records"] + second.core.totals["records"] == total)
    assert second.core.totals["creates"] == 1  # resumed after the first one's checkpoint
    assert first.core.totals["creates"] == 1 and second.core.totals["duplicates"] == 0


def test_demo_section_shows_the_stats(settings: Settings, engine: Engine) -> None:
    import io

    from rich.console import Console

    from engine.streams.demo import stats_section

    seven_hits_three_misses(engine)
    buffer = io.StringIO()
    data = stats_section(Console(file=buffer, width=120), engine)
    assert data["hit_ratio"] == 0.7 and data["fills"] == 3
    text = buffer.getvalue()
    assert "70.0%" in text and "latest analytics windows" in text and "records from 1 shard" in text

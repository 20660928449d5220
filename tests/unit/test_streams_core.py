"""engine/streams/core.py and analytics.py: a scripted sequence of cache changes with a known
answer, as the cache's stream would carry it (Lambda record shape, decoded for real)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from boto3.dynamodb.types import TypeSerializer

from engine.readmetrics.buckets import LAG_S
from engine.readmetrics.histogram import Histogram, quantile
from engine.readmetrics.stats import ReadStats
from engine.streams.analytics import merge_rows
from engine.streams.core import StreamProcessor
from engine.streams.records import ChangeRecord, from_stream

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/docsync-cache/stream/2026-11-01T00:00:00.000"
# Record times relative to now (two hours back, on a whole hour), so that what reads rows
# "since a day ago" finds them on any date; the answers depend only on the minute windows.
BASE = (datetime.now(UTC) - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
T0 = BASE + timedelta(seconds=5)
T1 = BASE + timedelta(minutes=1, seconds=10)


def iso(at: datetime) -> str:
    return f"{at:%Y-%m-%dT%H:%M:%SZ}"


W0, W1 = iso(BASE), iso(BASE + timedelta(minutes=1))  # the two minute windows
_ser = TypeSerializer()
_seq = itertools.count(1100000000017454423009)


def ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def raw(
    event: str,
    old: dict[str, Any] | None,
    new: dict[str, Any] | None,
    *,
    at: datetime = T0,
    ttl: bool = False,
    seq: int | None = None,
    arn: str = ARN,
) -> dict[str, Any]:
    """One DynamoDB stream record as a Lambda event carries it."""
    image = new if new is not None else old
    assert image is not None
    body: dict[str, Any] = {
        "ApproximateCreationDateTime": int(at.timestamp()),
        "Keys": {"pk": {"S": image["pk"]}},
        "SequenceNumber": str(seq if seq is not None else next(_seq)),
        "SizeBytes": 100,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if old is not None:
        body["OldImage"] = {k: _ser.serialize(v) for k, v in old.items()}
    if new is not None:
        body["NewImage"] = {k: _ser.serialize(v) for k, v in new.items()}
    record: dict[str, Any] = {
        "eventID": f"e{body['SequenceNumber']}",
        "eventName": event,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": body,
        "eventSourceARN": arn,
    }
    if ttl:
        record["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    return record


def live(
    pk: str,
    version: int,
    *,
    status: str = "approved",
    customers: tuple[str, ...] = ("acme",),
    source: str = "write",
    lag_ms: int = 500,
    at: datetime = T0,
) -> dict[str, Any]:
    """A committed live entry, as engine.store.cache.live_attributes writes it."""
    return {
        "pk": pk,
        "state": "live",
        "version": version,
        "status": status,
        "customers": list(customers),
        "sync_source": source,
        "s3_last_modified": ms(at) - lag_ms,
        "synced_at": ms(at),
        "etag": f"etag-{pk}-{version}",
        "expires_at": int(at.timestamp()) + 90 * 86400,
    }


def tombstone(pk: str, version: int, *, source: str = "write", at: datetime = T0) -> dict[str, Any]:
    return {
        "pk": pk,
        "state": "deleted",
        "version": version,
        "sync_source": source,
        "s3_last_modified": ms(at),
        "synced_at": ms(at) + 100,
        "expires_at": int(at.timestamp()) + 15 * 86400,
    }


def intent(base: dict[str, Any] | None, pk: str, *, at_ms: int) -> dict[str, Any]:
    """Step 1 of the write pipeline: the committed image (if any) plus p_* attributes."""
    return {**(base or {"pk": pk}), "p_tx": "tx", "p_etag": "e", "p_op": "put", "p_at": at_ms}


def metrics_image(pk: str, **counts: int) -> dict[str, Any]:
    return {"pk": pk, "kind": "read_metrics", **counts}


def scripted_batch(shift: timedelta = timedelta(0)) -> list[dict[str, Any]]:
    """A known answer (change: 2 creates, 2 updates, 1 delete; announcement: 1 rollback),
    its records at T0 and T1 (moved by `shift`: a backlog is a negative one)."""
    t0, t1 = T0 + shift, T1 + shift
    c1, c2, a3 = "change#c1", "change#c2", "announcement#a3"
    c1v1 = live(c1, 1, status="draft", customers=("acme", "globex"), lag_ms=300, at=t0)
    c1v2 = live(c1, 2, status="approved", customers=("acme", "globex"), lag_ms=700, at=t1)
    c2v1 = live(c2, 1, source="backfill", lag_ms=40_000, at=t0)
    c2v2 = live(c2, 2, status="closed", source="event", lag_ms=2_500, at=t1)
    c1_intent1 = intent(None, c1, at_ms=ms(t0) - 200)
    c1_intent2 = intent(c1v1, c1, at_ms=ms(t1) - 250)
    c1_intent3 = intent(c1v2, c1, at_ms=ms(t1) - 50)
    m = f"_docsync#metrics#{iso(BASE + shift)}"
    buckets = dict.fromkeys((f"lat_b{i}" for i in range(13)), 0)
    first_flush = metrics_image(m, hits=5, misses=2, **{**buckets, "lat_b3": 6, "lat_b5": 1})
    second_flush = metrics_image(m, hits=7, misses=3, **{**buckets, "lat_b3": 8, "lat_b5": 2})
    return [
        raw("INSERT", None, c1_intent1, at=t0),  # intent: nothing committed yet
        raw("MODIFY", c1_intent1, c1v1, at=t0),  # create (write), commit latency 0.2 s
        raw("INSERT", None, c2v1, at=t0),  # create by backfill: a fill
        raw("INSERT", None, first_flush, at=t0),  # read metrics: first flush, 5 hits 2 misses
        raw("MODIFY", c1v1, c1_intent2, at=t1),  # intent of an update
        raw("MODIFY", c1_intent2, c1v2, at=t1),  # update draft→approved, 0.25 s
        raw("MODIFY", c2v1, c2v2, at=t1),  # update approved→closed by an S3 event
        raw("MODIFY", first_flush, second_flush, at=t1),  # second flush: +2 hits +1 miss
        raw("MODIFY", c2v2, dict(c2v2), at=t1),  # an unchanged re-put: nothing
        raw("MODIFY", c1v2, c1_intent3, at=t1),  # intent of a delete
        raw("MODIFY", c1_intent3, tombstone(c1, 3, at=t1), at=t1),  # delete
        raw("INSERT", None, intent(None, a3, at_ms=ms(t1)), at=t1),  # intent …
        raw("REMOVE", intent(None, a3, at_ms=ms(t1)), None, at=t1),  # … rolled back
        raw("REMOVE", tombstone("change#c9", 4, at=t0), None, at=t1, ttl=True),  # expired
        raw("REMOVE", live("announcement#a8", 2, at=t0), None, at=t1, ttl=True),  # expired
    ]


def decoded(batch: list[dict[str, Any]]) -> list[ChangeRecord]:
    return [from_stream(r) for r in batch]


def test_scripted_workload_gives_exact_figures() -> None:
    core = StreamProcessor(table="docsync-cache", window_s=60)
    out = core.process(decoded(scripted_batch()))
    assert out.records == 15 and out.duplicates == 0 and out.removed == 1
    assert dict(out.changes) == {
        ("change", "creates"): 2,
        ("change", "updates"): 2,
        ("change", "deletes"): 1,
    }
    assert dict(out.writes) == {
        ("change", "write"): 3,
        ("change", "backfill"): 1,
        ("change", "event"): 1,
    }
    assert dict(out.fills()) == {"change": 1}
    assert dict(out.transitions) == {
        ("change", "draft→approved"): 1,
        ("change", "approved→closed"): 1,
    }
    assert dict(out.ttl_expiries) == {("change", "deleted"): 1, ("announcement", "live"): 1}
    assert sorted(out.sync_lag_s) == sorted(
        [("write", 0.3), ("backfill", 40.0), ("write", 0.7), ("event", 2.5), ("write", 0.1)]
    )
    assert sorted(round(s, 3) for s in out.write_commit_s) == [0.15, 0.2, 0.25]
    assert (out.reads.hits, out.reads.misses) == (7, 3)  # 5 + 2 hits, 2 + 1 misses
    assert out.reads.buckets[3] == 8 and out.reads.buckets[5] == 2
    assert core.cluster.hit_ratio == 0.7
    assert out.newest == T1


def test_window_rows_per_type_customer_and_status() -> None:
    core = StreamProcessor(table="docsync-cache", window_s=60)
    core.process(decoded(scripted_batch()))
    rows = {(r["window_start"], r["type"]): r for r in core.take_rows()}
    assert sorted(rows) == [
        (W0, "change"),
        (W1, "announcement"),
        (W1, "change"),
    ]
    first = rows[(W0, "change")]
    assert (first["creates"], first["updates"], first["deletes"], first["fills"]) == (2, 0, 0, 1)
    assert first["customers"] == {
        "acme": {"creates": 2, "updates": 0, "deletes": 0},
        "globex": {"creates": 1, "updates": 0, "deletes": 0},
    }
    assert first["statuses"]["draft"]["creates"] == 1
    assert first["statuses"]["approved"]["creates"] == 1
    assert first["writes"] == {"backfill": 1, "write": 1}
    assert first["sync_lag_s"]["count"] == 2 and first["sync_lag_s"]["max"] == 40.0
    second = rows[(W1, "change")]
    assert (second["creates"], second["updates"], second["deletes"]) == (0, 2, 1)
    assert second["transitions"] == {"approved→closed": 1, "draft→approved": 1}
    assert second["customers"]["globex"] == {"creates": 0, "updates": 1, "deletes": 1}
    assert second["statuses"]["approved"] == {"creates": 0, "updates": 1, "deletes": 1}
    assert second["ttl_expiries"] == 1
    assert rows[(W1, "announcement")]["ttl_expiries"] == 1
    assert core.take_rows() == []  # taken: the windows start again from zero


def test_redelivered_records_are_counted_once() -> None:
    batch = decoded(scripted_batch())
    core = StreamProcessor(table="docsync-cache")
    core.process(batch)
    rows_once = merge_rows(core.take_rows())
    again = core.process(batch[3:] + batch[:3])  # at-least-once: the whole batch again
    assert again.records == 0 and again.duplicates == len(batch)
    assert core.take_rows() == []
    assert core.cluster.total.hits == 7  # the metrics flushes were not added twice
    inside = core.process([batch[0], batch[0], batch[1]])
    assert inside.duplicates == 3
    fresh = StreamProcessor(table="docsync-cache")
    fresh.process(batch + batch[:5])  # duplicates inside one batch
    assert merge_rows(fresh.take_rows()) == rows_once


def test_dedupe_is_per_source_and_bounded() -> None:
    record = raw("INSERT", None, live("change#x", 1))
    other = dict(record, eventSourceARN=ARN.replace("2026-11-01", "2026-11-02"))
    core = StreamProcessor(table="docsync-cache", dedupe_capacity=2)
    assert core.process([from_stream(record), from_stream(other)]).records == 2
    core.process([from_stream(raw("INSERT", None, live("change#y", 1))) for _ in range(2)])
    assert core.process([from_stream(record)]).records == 1  # forgotten: capacity 2


def test_rows_add_up_whatever_the_split() -> None:
    batch = decoded(scripted_batch())
    whole = StreamProcessor(table="docsync-cache")
    whole.process(batch)
    expected = merge_rows(whole.take_rows())
    split = StreamProcessor(table="docsync-cache")
    rows: list[dict[str, Any]] = []
    for start in range(0, len(batch), 4):  # a checkpoint every 4 records
        split.process(batch[start : start + 4])
        rows.extend(split.take_rows())
    assert len(rows) > len(expected)
    assert merge_rows(rows) == expected
    failed = split.take_rows()
    split.process(batch[:0])
    split.restore_rows(rows)  # an emission failed: everything comes back
    assert merge_rows(split.take_rows()) == expected and failed == []


def test_other_tables_foreign_items_and_discard() -> None:
    core = StreamProcessor(table="docsync-cache")
    other_table = raw("INSERT", None, live("change#z", 1), arn=ARN.replace("docsync-cache", "x"))
    foreign = raw("INSERT", None, {"pk": "just-a-key", "n": 1})
    reserved = raw("INSERT", None, {"pk": "_docsync#other#1", "n": 1})
    out = core.process(decoded([other_table, foreign, reserved]))
    assert out.records == 3 and out.ignored == 3 and not out.changes
    core.process(decoded([raw("INSERT", None, live("change#q", 1))]))
    core.discard_pending()  # the lease is lost: nothing pending, nothing remembered
    assert core.take_rows() == []
    assert core.process(decoded([other_table])).records == 1


def test_summary_totals() -> None:
    core = StreamProcessor(table="docsync-cache")
    core.process(decoded(scripted_batch()))
    summary = core.summary()
    assert summary["records"] == 15
    assert (summary["creates"], summary["updates"], summary["deletes"]) == (2, 2, 1)
    assert summary["ttl_expiries"] == 2 and summary["fills"] == 1
    assert summary["writes"] == {"backfill": 1, "event": 1, "write": 3}
    assert summary["cluster"]["hit_ratio"] == 0.7
    assert summary["events"] == {"INSERT": 4, "MODIFY": 8, "REMOVE": 3}


def test_quantiles_from_buckets() -> None:
    bounds = (1.0, 2.0, 4.0)
    assert quantile(bounds, [0, 0, 0, 0], 0.5) is None
    assert quantile(bounds, [0, 10, 0, 0], 0.5) == 1.5  # linear inside (1, 2]
    assert quantile(bounds, [5, 5, 0, 0], 0.99) == 1.98
    assert quantile(bounds, [0, 0, 0, 3], 0.5) == 4.0  # overflow: its lower bound
    h = Histogram(LAG_S)
    for value in (0.05, 0.3, 0.3, 7.0):
        h.observe(value)
    assert h.count == 4 and h.peak == 7.0 and round(h.total, 6) == 7.65
    assert Histogram.from_dict(LAG_S, h.as_dict()).counts == h.counts
    assert h.quantile(0.99) == 7.0  # the bucket (5, 10] interpolates to 9.8: capped at max


def test_read_stats_take_delta_hands_each_read_once() -> None:
    stats = ReadStats()
    for ms_ in (0.5, 3.0, 3.0, 7000.0):
        stats.record("hit", ms_)
    stats.record("miss", 30.0, backfilled=True)
    first = stats.take_delta()
    assert (first.hits, first.misses, first.backfills, first.reads) == (4, 1, 1, 5)
    assert first.buckets[0] == 1 and first.buckets[2] == 2 and first.buckets[-1] == 1
    assert stats.take_delta().empty()
    stats.record("bypass", 1.0)
    second = stats.take_delta()
    assert second.s3_fallbacks == 1 and second.buckets[0] == 1 and sum(second.buckets) == 1
    assert stats.hits == 4 and stats.misses == 1  # totals keep growing for in-process users
    assert (first + second).reads == 6


def test_iterator_age_comes_from_the_newest_record() -> None:
    from engine.streams.exporters import iterator_age_s

    core = StreamProcessor()
    out = core.process(decoded([raw("INSERT", None, live("change#n", 1), at=T1)]))
    assert iterator_age_s(out, T1 + timedelta(seconds=42)) == 42.0

"""engine/streams/hotspots.py: the GSI partitions a committed write lands in, counted by the
stream core per window, and the busiest of them as `docsync stats` shows them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine import keys
from engine.awsmetrics import KINDS
from engine.documents import parse_document
from engine.store.item import CacheItem, live_attributes
from engine.store.objects import ObjectInfo
from engine.streams.core import StreamProcessor
from engine.streams.hotspots import busiest, partitions_of
from engine.streams.records import from_stream
from engine.streams.stats import capacity_figures
from tests.unit.test_streams_core import T0, live, raw

NOW = datetime.now(UTC).replace(microsecond=0)


def image(doc_id: str, shards: int) -> CacheItem:
    doc = parse_document(
        {
            "id": doc_id,
            "object_type": "change",
            "title": "t",
            "customer_codes": ["acme", "stark", "acme"],
            "status": "draft",
            "created_at": keys.iso(NOW - timedelta(days=1)),
            "modified_at": keys.iso(NOW),
        }
    )
    info = ObjectInfo(f"changes/{doc_id}.json", doc.etag, len(doc.body), NOW)
    attrs = live_attributes(
        doc,
        info,
        prefix="changes/",
        source="write",
        ttl_days=90,
        inline_limit=1000,
        month_shards=shards,
    )
    return CacheItem.from_item({**attrs, "pk": keys.cache_pk("change", doc_id)})


def test_a_write_lands_in_its_month_buckets_and_one_per_customer() -> None:
    month = keys.month_bucket(NOW)
    assert partitions_of(image("CHG-1", 1)) == [
        f"time-index change#{month}",
        f"status-index change#draft#{month}",
        f"customer-index acme#change#{month}",
        f"customer-index stark#change#{month}",
    ]
    n = keys.month_shard("CHG-1", 4)
    assert partitions_of(image("CHG-1", 4)) == [
        f"time-index change#{month}#{n}",
        f"status-index change#draft#{month}#{n}",
        f"customer-index acme#change#{month}#{n}",
        f"customer-index stark#change#{month}#{n}",
    ]
    assert partitions_of(CacheItem(type="change", id="CHG-1", state="deleted")) == []


def test_the_core_counts_committed_writes_per_partition_and_window() -> None:
    def committed(pk: str, version: int, status: str) -> dict[str, object]:
        return {**live(pk, version, status=status), "tpk": "change#m", "spk": f"change#{status}#m"}

    core = StreamProcessor(table="docsync-cache", window_s=60)
    records = [
        raw("INSERT", None, committed("change#c1", 1, "draft"), at=T0),
        raw("MODIFY", committed("change#c1", 1, "draft"), committed("change#c1", 2, "open"), at=T0),
        raw("INSERT", None, committed("change#c2", 1, "draft"), at=T0),
        raw("MODIFY", committed("change#c2", 1, "draft"), committed("change#c2", 1, "draft")),
    ]
    out = core.process([from_stream(r) for r in records])
    assert dict(out.partitions) == {
        "time-index change#m": 3,
        "status-index change#draft#m": 2,
        "status-index change#open#m": 1,
        "customer-index acme#change#m": 3,
    }
    (row,) = core.take_rows()
    assert row["partitions"] == dict(out.partitions)


def test_busiest_ranks_by_peak_writes_per_second_across_windows() -> None:
    rows = [
        {
            "window_start": "w1",
            "window_s": 60,
            "partitions": {"time-index a": 600, "time-index b": 60},
        },
        {"window_start": "w2", "window_s": 60, "partitions": {"time-index b": 120}},
        {"window_start": "w3", "window_s": 60, "type": "x"},
    ]
    top = busiest(rows, top=5)
    assert [(p["partition"], p["writes"], p["peak_window"]) for p in top] == [
        ("a", 600, "w1"),
        ("b", 180, "w2"),
    ]
    assert top[0]["peak_writes_per_s"] == 10.0 and top[0]["of_limit"] == 0.01
    assert busiest(rows, top=1)[0]["partition"] == "a"
    assert busiest([]) == []


def test_stats_shows_the_flushed_capacity_per_operation_kind() -> None:
    units = {"reconcile": {"read": 3.5, "write": 0.0}, "read": {"read": 1.0, "write": 0.25}}
    figures = capacity_figures(units)
    assert figures["scope"] == "cluster"
    assert figures["reconcile"] == {"read": 3.5, "write": 0.0}
    assert list(figures) == ["scope", *(k for k in KINDS if k in figures)]
    assert capacity_figures({}) == {"scope": "cluster"}

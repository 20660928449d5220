"""engine/readmetrics: one set of bucket bounds (the values every dashboard and flushed item
already rely on), the flush's UpdateItem as pure data, and the one tumbling-window function."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import Histogram

from engine import awsmetrics, keys, metrics
from engine.readmetrics import buckets
from engine.readmetrics.cluster import ClusterReads, flush_delta
from engine.readmetrics.item import delta_of_image, flush_update, metrics_pk
from engine.readmetrics.stats import ReadStats
from engine.serve import http_metrics

# The contract (docs/metrics.md, dashboards): these never change with a refactor.
READ_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
AWS_S = (*READ_S, 10.0)
HTTP_S = (*READ_S[1:], 10.0, 30.0)
LAG_S = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
ITEMS = (0, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)


def _bounds(histogram: Histogram, *labels: str) -> tuple[float, ...]:
    """The `le` bounds the registry exposes for one histogram (+Inf left out)."""
    child = histogram.labels(*labels) if labels else histogram
    child.observe(0.0)
    name = next(iter(histogram.describe())).name + "_bucket"
    for family in metrics.REGISTRY.collect():
        les = [
            float(s.labels["le"])
            for s in family.samples
            if s.name == name and all(v in s.labels.values() for v in labels)
        ]
        if les:
            return tuple(b for b in les if b != float("inf"))
    raise AssertionError(f"{name} not exposed")


@pytest.mark.parametrize(
    ("histogram", "labels", "expected"),
    [
        (metrics.READ_SECONDS, ("hit",), READ_S),
        (metrics.EVENT_APPLY_SECONDS, (), READ_S),
        (metrics.WRITE_COMMIT_SECONDS, (), READ_S),
        (metrics.SYNC_LAG_SECONDS, (), LAG_S),
        (metrics.STREAM_SYNC_LAG_SECONDS, ("pipeline",), LAG_S),
        (awsmetrics.OPERATION_SECONDS, ("dynamodb", "GetItem", "t"), AWS_S),
        (awsmetrics.ITEMS_RETURNED, ("dynamodb", "Query", "t"), ITEMS),
        (awsmetrics.ITEMS_SCANNED, ("t", "Query"), ITEMS),
        (http_metrics.HTTP_SECONDS, ("GET", "/x", "200"), HTTP_S),
    ],
)
def test_every_histogram_keeps_its_bounds(
    histogram: Histogram, labels: tuple[str, ...], expected: tuple[float, ...]
) -> None:
    assert _bounds(histogram, *labels) == expected


def test_read_stats_count_in_the_read_latency_buckets_in_ms() -> None:
    assert [str(b) for b in ReadStats.BUCKETS_MS] == [  # the flushed item's bounds_ms
        "1.0", "2.5", "5.0", "10.0", "25.0", "50.0", "100.0", "250.0", "500.0", "1000.0",
        "2500.0", "5000.0",
    ]  # fmt: skip
    stats = ReadStats()
    stats.record("hit", 2.5)  # on a bound: counted in that bound's bucket
    stats.record("miss", 9_999.0)  # above every bound: the overflow bucket
    delta = stats.take_delta()
    assert len(delta.buckets) == len(READ_S) + 1
    assert (delta.buckets[1], delta.buckets[-1]) == (1, 1)


def test_latency_stretch_must_lie_on_the_ladder() -> None:
    assert buckets.latency_s(0.01, 0.1) == (0.01, 0.025, 0.05, 0.1)
    with pytest.raises(ValueError, match="ladder"):
        buckets.latency_s(0.002, 1.0)


def test_flush_update_is_the_documented_item() -> None:
    stats = ReadStats()
    stats.record("hit", 3.0)
    stats.record("s3", 40.0, backfilled=True)
    update = flush_update("f1", 1_800_000_000, 60, 7 * 86400, stats.take_delta())
    assert update["Key"] == {"pk": {"S": metrics_pk(1_800_000_000)}}
    assert update["Key"]["pk"]["S"] == "_docsync#metrics#2027-01-15T08:00:00Z"
    names, values = update["ExpressionAttributeNames"], update["ExpressionAttributeValues"]
    added = {names[f"#a{i}"]: values[f":a{i}"]["N"] for i in range(8)}
    assert added == {
        "hits": "1",
        "misses": "0",
        "s3_fallbacks": "1",
        "backfills": "1",
        "lat_sum_ms": "43.0",
        "lat_b2": "1",
        "lat_b5": "1",
        "flushes": "1",
    }
    assert values[":exp"] == {"N": str(1_800_000_000 + 60 + 7 * 86400)}
    assert values[":bounds"]["L"][0] == {"N": "1.0"}
    assert update["ConditionExpression"] == (
        "attribute_not_exists(#ids) OR NOT contains(#ids, :id)"
    )


def test_flushes_add_up_to_cluster_figures() -> None:
    one = {"hits": 3, "misses": 1, "lat_sum_ms": 12.0, "lat_b1": 4}
    two = {"hits": 5, "misses": 1, "lat_sum_ms": 20.0, "lat_b1": 4, "lat_b3": 2}
    total = flush_delta(None, one) + flush_delta(one, two)
    assert total == delta_of_image(two)
    cluster = ClusterReads(total)
    assert cluster.hit_ratio == round(5 / 6, 6)
    assert cluster.latency_ms(0.5) is not None


@pytest.mark.parametrize("window_s", [1, 60, 300, 3600])
def test_one_tumbling_window_for_metrics_and_analytics(window_s: int) -> None:
    """The metrics items (epoch seconds) and the analytics rows (datetimes) share one function;
    it agrees with what each computed before."""
    now = datetime.now(UTC)
    for step in range(0, 7200, 97):
        ts = now + timedelta(seconds=step, microseconds=step * 7)
        start = keys.tumbling_start(ts.timestamp(), window_s)
        assert start == int(ts.timestamp()) // window_s * window_s  # analytics' window_of
        assert start == int(ts.timestamp() // window_s * window_s)  # the flush's window_start
        assert start <= ts.timestamp() < start + window_s

"""Capacity per operation kind, cluster-wide: a `docsync reconcile repair` in one process and
a few gets in another Engine each flush what they consumed into the cache table's metrics
items, and `docsync stats` (a third process) adds both up.

moto (5.x) answers GetItem and UpdateItem (0.5 units), PutItem, DeleteItem, Query and Scan
(1 unit) and BatchGetItem/BatchWriteItem/TransactGetItems with ConsumedCapacity, as a total
(`CapacityUnits`, no read/write split: awsmetrics counts it on the operation's side);
TransactWriteItems returns an empty list. So the test asserts exactly what the reading process
counted itself, and that the reconcile's reads are there, not AWS's own figures."""

from __future__ import annotations

import json

from engine.app import Engine
from engine.awsmetrics import capacity_by_kind
from engine.readmetrics import capacity
from engine.readmetrics.flush import MetricsFlusher
from tests.e2e.conftest import BUCKET, Aws, Cli, engine_settings
from tests.e2e.test_cli_reconcile import document, key_of
from tests.e2e.test_cli_streams import docsync

PLANTED = [f"cap-{n}" for n in range(5)]


def test_stats_adds_up_the_capacity_every_process_flushed(
    cli: Cli, ready: Engine, aws: Aws
) -> None:
    for doc_id in PLANTED:  # in S3, not in the cache: the repair fills them
        body = json.dumps(document("change", doc_id)).encode()
        aws.s3.put_object(Bucket=BUCKET, Key=key_of("change", doc_id), Body=body)
    repair = cli("reconcile", "repair", "--format", "json").json()
    assert repair["repaired"]["missing"] == len(PLANTED)

    reader = Engine.build(engine_settings(cli.endpoint))
    capacity.TAKER.take()  # this test process's earlier calls (setup) are not the workload
    before = capacity_by_kind().get("read", {"read": 0.0})["read"]
    for doc_id in PLANTED[:3]:
        assert reader.reader.get("change", doc_id).cache == "hit"
    gets = capacity_by_kind()["read"]["read"] - before
    assert gets > 0  # moto's GetItem/Query capacity, counted under the read kind
    assert MetricsFlusher(reader.cache, reader.reader.stats).flush() is not None

    stats = docsync(cli, "stats", "--format", "json").json()
    units = stats["capacity_by_kind"]
    assert units["scope"] == "cluster"
    assert units["read"]["read"] == round(gets, 3)  # the other Engine's gets, flushed once
    assert units["reconcile"]["read"] > 0  # the repair's scans and lookups, its exit flush
    assert (stats["hits"], stats["misses"]) == (3, 0)
    again = docsync(cli, "stats", "--format", "json").json()["capacity_by_kind"]
    assert again["reconcile"] == units["reconcile"]  # `stats` itself flushes nothing


def test_a_drained_listener_leaves_its_capacity_for_stats(
    cli: Cli, ready: Engine, aws: Aws
) -> None:
    """`docsync listen` (not only `serve`) flushes what it consumed, under the listener kind."""
    for doc_id in PLANTED[:3]:  # direct writes: S3 notifies the queue, the listener applies
        body = json.dumps(document("change", doc_id)).encode()
        aws.s3.put_object(Bucket=BUCKET, Key=key_of("change", doc_id), Body=body)
    summary = cli("listen", "--drain", "--wait", "1", "--format", "json").json()
    assert summary["applied"] == 3
    units = docsync(cli, "stats", "--format", "json").json()["capacity_by_kind"]
    assert units["listener"]["read"] > 0  # its GetItems (moto counts those), flushed at exit

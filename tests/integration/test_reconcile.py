"""Invariant 6 over HTTP: planted drift of every class → exact counts; repair → zero drift and
cache = S3; racing writers and listeners never make an entry go backwards."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer

from engine import keys
from engine.app import Engine
from engine.documents import Document, parse_document
from engine.events.worker import SqsListener
from engine.settings import Settings
from engine.store.item import serialize
from reconciler.run import Reconciler
from tests.conftest import make_settings
from tests.integration.test_listener_convergence import body

ODD_KEYS = ["changes/with space.json", "changes/a+b.json", "changes/café.json"]


def load(engine: Engine, n: int) -> list[Document]:
    docs = [parse_document(body(f"CHG-{i:03d}", i)) for i in range(n)]
    for d in docs:
        engine.pipeline.put(d)
    return docs


def cache_equals_s3(engine: Engine) -> None:
    live = {
        str(i["s3_key"]): i["etag"]
        for i in engine.cache.scan_all()
        if i.get("state") == "live" and i["expires_at"] > time.time()
    }
    in_s3 = {
        info.key: info.etag
        for prefix in engine.settings.prefixes.values()
        for info in engine.objects.list(prefix)
        if keys.key_to_doc(info.key, engine.settings.prefixes)
        and b"garbage" not in engine.objects.get(info.key).body
    }
    assert live == in_s3


def test_planted_drift_of_every_class_then_repair_then_zero(engine: Engine) -> None:
    docs = load(engine, 30)
    ddb, s3, bucket = engine.clients.dynamodb, engine.clients.s3, engine.settings.bucket
    # missing: cache entries deleted
    for d in docs[:3]:
        ddb.delete_item(TableName=engine.settings.table, Key={"pk": {"S": f"change#{d.id}"}})
    # orphaned: objects deleted from S3 with their events dropped
    for d in docs[3:5]:
        s3.delete_object(Bucket=bucket, Key=f"changes/{d.id}.json")
    # stale: objects changed in S3 with their events dropped
    for d in docs[5:9]:
        engine.objects.put(f"changes/{d.id}.json", body(d.id, 1000))
    # invalid: garbage and keys that are not document ids (spaces, +, unicode)
    engine.objects.put("changes/CHG-garbage.json", b"garbage{")
    for key in ODD_KEYS:
        engine.objects.put(key, body("CHG-000", 1))
    first = Reconciler(engine).run("report").as_dict()
    assert first["counts"] == {
        "missing": 3,
        "stale": 4,
        "orphaned": 2,
        "invalid": 4,
        "in_sync": 21,
    }
    assert first["remaining"] == 9
    assert {i["key"] for i in first["items"] if i["class"] == "invalid"} == {
        "changes/CHG-garbage.json",
        *ODD_KEYS,
    }
    stale = next(i for i in first["items"] if i["class"] == "stale")
    assert stale["s3"]["etag"] != stale["cache"]["etag"]
    assert stale["s3"]["size"] and stale["cache"]["last_modified"]
    repair = Reconciler(engine).run("repair").as_dict()
    assert repair["repaired"] == {"missing": 3, "stale": 4, "orphaned": 2, "invalid": 0}
    assert repair["remaining"] == 0
    again = Reconciler(engine).run("repair").as_dict()
    assert (
        again["counts"]["missing"] == again["counts"]["stale"] == again["counts"]["orphaned"] == 0
    )
    assert again["repaired"] == {"missing": 0, "stale": 0, "orphaned": 0, "invalid": 0}
    assert again["counts"]["invalid"] == 4  # reported, never cached, never deleted
    assert engine.objects.head("changes/CHG-garbage.json") is not None
    cache_equals_s3(engine)
    for d in docs[3:5]:
        assert engine.cache.get_item("change", d.id)["state"] == "deleted"  # type: ignore[index]


def test_in_flight_entries_inside_the_grace_are_left_alone(settings: Settings) -> None:
    engine = Engine.build(make_settings(str(settings.endpoint_url), inflight_grace_s=3600))
    docs = load(engine, 3)
    engine.objects.put("changes/CHG-000.json", body("CHG-000", 77))  # drifted...
    engine.cache.begin(  # ...but a write is in flight
        "change",
        "CHG-000",
        tx="t",
        etag="e" * 32,
        op="put",
        stale_before=datetime.now(UTC) - timedelta(hours=2),
        expected_version=None,
    )
    result = Reconciler(engine).run("repair").as_dict()
    assert result["skipped"].get("in_flight") == 1 and result["counts"]["stale"] == 0
    assert engine.cache.get_item("change", "CHG-000")["p_tx"] == "t"  # type: ignore[index]
    # outside the grace period the same entry is repaired (and the dead intent dropped)
    late = Engine.build(make_settings(str(settings.endpoint_url), inflight_grace_s=0))
    result = Reconciler(late).run("repair").as_dict()
    assert result["repaired"]["stale"] == 1
    item = late.cache.get_item("change", "CHG-000")
    assert item is not None and "p_tx" not in item and item["sync_source"] == "repair"
    assert docs
    cache_equals_s3(late)


def test_out_of_window_objects_and_expired_entries_are_not_drift(engine: Engine) -> None:
    load(engine, 5)
    engine.clients.s3.delete_object(Bucket=engine.settings.bucket, Key="changes/CHG-000.json")
    engine.clients.dynamodb.update_item(  # expired (TTL deletes lazily) and orphaned
        TableName=engine.settings.table,
        Key={"pk": {"S": "change#CHG-000"}},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues=serialize({":past": int(time.time()) - 5}),
    )
    now = Reconciler(engine).run("report").as_dict()
    assert now["skipped"] == {"expired": 1}
    assert now["counts"]["orphaned"] == 0 and now["counts"]["in_sync"] == 4
    # 100 days on, every object is out of the window and every entry expired: no drift
    later = Reconciler(engine).run("report", now=datetime.now(UTC) + timedelta(days=100))
    assert later.drift == 0
    assert later.skipped == {"out_of_window": 4, "expired": 1}


def _stream_records(engine: Engine) -> list[dict[str, Any]]:
    streams = engine.clients.client("dynamodbstreams")
    arn = engine.clients.dynamodb.describe_table(TableName=engine.settings.table)["Table"][
        "LatestStreamArn"
    ]
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            records.extend(page["Records"])
            iterator = page.get("NextShardIterator") if page["Records"] else None
    return records


def test_repair_racing_writers_and_listeners_never_goes_backwards(engine: Engine) -> None:
    rng = random.Random(7)
    ids = [f"CHG-{i:03d}" for i in range(6)]
    stop = threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            doc_id = rng.choice(ids)
            op = rng.random()
            if op < 0.4:
                engine.pipeline.put(parse_document(body(doc_id, n)))
            elif op < 0.8:
                engine.objects.put(f"changes/{doc_id}.json", body(doc_id, n))
            else:
                engine.clients.s3.delete_object(
                    Bucket=engine.settings.bucket, Key=f"changes/{doc_id}.json"
                )
            time.sleep(0.01)

    listener = SqsListener.for_engine(engine, workers=3, wait_s=1, visibility_s=5)
    threads = [
        threading.Thread(target=writer),
        threading.Thread(target=listener.run),
    ]
    for t in threads:
        t.start()
    for _ in range(4):
        Reconciler(engine).run("repair")
    stop.set()
    listener.stop.set()
    for t in threads:
        t.join(timeout=60)
    SqsListener.for_engine(engine, workers=3, wait_s=1).run(drain=True)
    Reconciler(engine).run("repair")
    for doc_id in ids:
        head = engine.objects.head(f"changes/{doc_id}.json")
        item = engine.cache.get_item("change", doc_id)
        if head is None:
            assert item is None or item["state"] == "deleted"
        else:
            assert item is not None and item["state"] == "live" and item["etag"] == head.etag
    # Every change the cache went through, from its stream: the position only grows.
    de = TypeDeserializer()
    positions: dict[str, list[int]] = defaultdict(list)
    sources: dict[str, set[str]] = defaultdict(set)
    for record in _stream_records(engine):
        new = record["dynamodb"].get("NewImage")
        if not new or "s3_last_modified" not in new:
            continue
        image = {k: de.deserialize(v) for k, v in new.items()}
        positions[str(image["pk"])].append(int(image["s3_last_modified"]))
        sources[str(image["pk"])].add(str(image.get("sync_source")))
    assert positions, "the stream recorded the run"
    for pk, seen in positions.items():
        assert seen == sorted(seen), (pk, seen)
    assert any("repair" in s or "event" in s for s in sources.values())


@pytest.mark.parametrize("mode", ["report", "repair"])
def test_reports_are_saved_and_listed(engine: Engine, mode: str, tmp_path: Any) -> None:
    from reconciler import reports

    load(engine, 2)
    engine.objects.put("changes/CHG-x.json", body("CHG-x", 1))
    result = Reconciler(engine).run(mode)  # type: ignore[arg-type]
    where = reports.save(engine, result, str(tmp_path))
    saved = json.loads((tmp_path / where["dir"].split("/")[-1]).read_text())
    assert saved["mode"] == mode and saved["counts"]["missing"] == 1
    assert (
        (tmp_path / where["dir"].split("/")[-1].replace(".json", ".md"))
        .read_text()
        .startswith("# Drift report")
    )
    runs = reports.history(engine)
    assert runs[0]["mode"] == mode and runs[0]["counts"]["missing"] == 1
    # the reports live under the reserved prefix, which the reconciler itself ignores
    assert Reconciler(engine).run("report").counts["invalid"] == 0


def test_enqueued_shard_tasks_taken_by_two_workers_give_the_same_report(engine: Engine) -> None:
    from reconciler import tasks

    load(engine, 12)
    engine.objects.put("changes/CHG-new.json", body("CHG-new", 1))
    engine.clients.dynamodb.delete_item(
        TableName=engine.settings.table, Key={"pk": {"S": "change#CHG-003"}}
    )
    local = Reconciler(engine).run("report").as_dict()
    sent = tasks.enqueue(engine, "report")
    assert sent["tasks"] == local["shards"]
    other = Engine.build(engine.settings)  # a second machine
    done: list[int] = []
    workers = [
        threading.Thread(target=lambda e=e: done.append(tasks.work(e))) for e in (engine, other)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert sum(done) == sent["tasks"]
    collected = tasks.collect(engine, sent["run_id"])
    assert collected["complete"] is True
    assert collected["counts"] == local["counts"]
    assert [i["key"] for i in collected["items"]] == [i["key"] for i in local["items"]]
    assert collected["counts"]["missing"] == 2

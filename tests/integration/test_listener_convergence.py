"""Invariant 3 over HTTP: events late, duplicated, reordered, applied by concurrent workers,
while writes continue — after draining, the cache equals S3 for every key."""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import keys
from engine.app import Engine
from engine.documents import parse_document
from engine.events.apply import EventApplier
from engine.events.parse import ObjectEvent, TestEvent, parse_body
from engine.events.worker import SqsListener
from engine.exceptions import NotFoundError
from engine.infra import Infrastructure
from engine.local_moto import EmbeddedMoto
from engine.settings import Settings
from tests.conftest import make_settings

KEYS = ["CHG-a", "CHG-b", "CHG-c", "CHG-d"]


CREATED, MODIFIED = (keys.iso(datetime.now(UTC) - timedelta(days=d)) for d in (20, 2))


def body(doc_id: str, n: int) -> bytes:
    return parse_document(
        {
            "id": doc_id,
            "object_type": "change",
            "title": f"revision {n}",
            "customer_codes": ["acme"],
            "status": "approved",
            "created_at": CREATED,
            "modified_at": MODIFIED,
            "n": n,
        }
    ).body


def fresh(moto_server: EmbeddedMoto) -> Engine:
    moto_server.reset()
    s = make_settings(moto_server.endpoint, inflight_grace_s=30)
    engine = Engine.build(s)
    Infrastructure(s, engine.clients).init()
    return engine


def drain_events(engine: Engine) -> list[ObjectEvent]:
    """Take every notification off the queue (the test, not the worker, delivers them)."""
    sqs = engine.clients.sqs
    url = sqs.get_queue_url(QueueName=engine.settings.queue)["QueueUrl"]
    events: list[ObjectEvent] = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not messages:
            return events
        for message in messages:
            parsed = parse_body(message["Body"])
            if not isinstance(parsed, TestEvent):
                events.extend(parsed)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def assert_cache_equals_s3(engine: Engine) -> None:
    for doc_id in KEYS:
        key = f"changes/{doc_id}.json"
        head = engine.objects.head(key)
        item = engine.cache.get_item("change", doc_id)
        if head is None:
            assert item is None or item.get("state") == "deleted", (doc_id, item)
        else:
            assert item is not None and item.get("state") == "live", (doc_id, item)
            assert item["etag"] == head.etag, doc_id
            assert item["body"].encode() == engine.objects.get(key).body
        assert item is None or "p_tx" not in item, (doc_id, item)


@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**32 - 1), workers=st.integers(2, 6))
def test_random_writes_with_shuffled_duplicated_events_converge(
    moto_server: EmbeddedMoto, seed: int, workers: int
) -> None:
    engine = fresh(moto_server)
    rng = random.Random(seed)
    pending: list[ObjectEvent] = []
    lock = threading.Lock()
    writing = threading.Event()
    writing.set()

    def worker(worker_rng: random.Random) -> None:
        while True:
            with lock:
                event = pending.pop(worker_rng.randrange(len(pending))) if pending else None
            if event is None:
                if not writing.is_set():
                    return
                time.sleep(0.005)
                continue
            EventApplier.for_engine(engine).apply(event)

    threads = [
        threading.Thread(target=worker, args=(random.Random(seed + n),)) for n in range(workers)
    ]
    for t in threads:
        t.start()
    for n in range(24):
        doc_id = rng.choice(KEYS)
        key = f"changes/{doc_id}.json"
        op = rng.random()
        if op < 0.35:
            engine.pipeline.put(parse_document(json.loads(body(doc_id, n))))
        elif op < 0.7:
            engine.objects.put(key, body(doc_id, n))  # another application, bypassing us
        elif op < 0.85:
            engine.clients.s3.delete_object(Bucket=engine.settings.bucket, Key=key)
        else:
            with contextlib.suppress(NotFoundError):  # nothing to delete
                engine.pipeline.delete("change", doc_id)
        if rng.random() < 0.5:  # deliver some events now, duplicated and out of order
            batch = drain_events(engine)
            batch += [e for e in batch if rng.random() < 0.4]
            rng.shuffle(batch)
            with lock:
                pending.extend(batch)
    late = drain_events(engine)
    late += [e for e in late if rng.random() < 0.5]
    rng.shuffle(late)
    with lock:
        pending.extend(late)
    writing.clear()
    for t in threads:
        t.join(timeout=60)
    assert_cache_equals_s3(engine)


def test_late_create_event_does_not_resurrect_a_deleted_document(engine: Engine) -> None:
    key = "changes/CHG-a.json"
    engine.objects.put(key, body("CHG-a", 1))
    old = engine.objects.get(key)
    create_events = drain_events(engine)
    engine.clients.s3.delete_object(Bucket=engine.settings.bucket, Key=key)
    delete_events = drain_events(engine)
    for event in delete_events:
        assert EventApplier.for_engine(engine).apply(event) == "applied"
    for event in create_events:  # late, after the delete
        assert EventApplier.for_engine(engine).apply(event) == "duplicate"
    # an applier that read the object before the delete and writes only now
    doc = parse_document(old.body)
    assert engine.sync.upsert(doc, old, "event") == "stale"
    item = engine.cache.get_item("change", "CHG-a")
    assert item is not None and item["state"] == "deleted"


def test_event_commits_a_crashed_pipeline_write(engine: Engine) -> None:
    """The writer died after its S3 put: the event (same ETag) commits the intent."""
    doc = parse_document(json.loads(body("CHG-a", 1)))
    engine.cache.begin(
        "change",
        "CHG-a",
        tx="dead",
        etag=doc.etag,
        op="put",
        stale_before=engine.sync.stale_before(),
        expected_version=None,
    )
    engine.objects.put("changes/CHG-a.json", doc.body)
    outcomes = [EventApplier.for_engine(engine).apply(e) for e in drain_events(engine)]
    assert outcomes == ["committed"]
    item = engine.cache.get_item("change", "CHG-a")
    assert item is not None and item["state"] == "live" and "p_tx" not in item
    assert int(item["version"]) == 1


def test_event_costs_three_calls_and_a_duplicate_two_without_a_download(
    engine: Engine, counter: Any
) -> None:
    """A change: GetItem, GetObject, one conditional write. The pipeline's own event (the cache
    already holds S3's ETag) is a conditional GetObject that S3 answers 304, with no body."""
    engine.pipeline.put(parse_document(json.loads(body("CHG-a", 1))))
    (own,) = drain_events(engine)
    counter.reset()
    assert EventApplier.for_engine(engine).apply(own) == "duplicate"
    assert counter.counts == {"dynamodb.GetItem": 1, "s3.GetObject": 1}

    time.sleep(1.05)  # a later second: a same-second overwrite needs a HEAD re-check (+2 calls)
    engine.clients.s3.put_object(  # another application overwrites it
        Bucket=engine.settings.bucket, Key="changes/CHG-a.json", Body=body("CHG-a", 2)
    )
    (changed,) = drain_events(engine)
    counter.reset()
    assert EventApplier.for_engine(engine).apply(changed) == "applied"
    # the entry read is plainly older: the whole image in one PutItem, conditional on its version
    assert counter.counts == {
        "dynamodb.GetItem": 1,
        "s3.GetObject": 1,
        "dynamodb.TransactWriteItems": 1,  # the image and its customer-index entries
    }
    assert EventApplier.for_engine(engine).apply(changed) == "duplicate"  # redelivered
    assert_cache_equals_s3(engine)


def test_an_apply_that_read_an_old_entry_never_replaces_a_newer_one(engine: Engine) -> None:
    """Worker A reads v1 and downloads revision 2; meanwhile revision 3 is written and applied.
    A's whole-image put (conditional on v1) is refused, and the general path finds it stale."""
    key = "changes/CHG-a.json"
    engine.objects.put(key, body("CHG-a", 1))
    for event in drain_events(engine):
        EventApplier.for_engine(engine).apply(event)
    read_by_a = engine.cache.get("change", "CHG-a")
    time.sleep(1.05)  # S3's LastModified has second precision
    engine.objects.put(key, body("CHG-a", 2))
    downloaded_by_a = engine.objects.get(key)
    time.sleep(1.05)
    engine.objects.put(key, body("CHG-a", 3))
    for event in drain_events(engine):
        EventApplier.for_engine(engine).apply(event)
    doc = parse_document(downloaded_by_a.body)
    assert engine.sync.upsert(doc, downloaded_by_a, "event", current=read_by_a, read=True) == (
        "stale"
    )
    item = engine.cache.get_item("change", "CHG-a")
    assert item is not None and json.loads(item["body"])["n"] == 3
    assert_cache_equals_s3(engine)


def test_fresh_intent_with_other_content_defers_the_event(engine: Engine) -> None:
    engine.cache.begin(
        "change",
        "CHG-a",
        tx="alive",
        etag="0" * 32,
        op="put",
        stale_before=engine.sync.stale_before(),
        expected_version=None,
    )
    engine.objects.put("changes/CHG-a.json", body("CHG-a", 2))
    assert [EventApplier.for_engine(engine).apply(e) for e in drain_events(engine)] == ["in_flight"]


def test_keys_outside_prefixes_reserved_and_invalid_are_skipped(engine: Engine) -> None:
    engine.objects.put("_docsync/reports/r.json", b"{}")
    engine.objects.put("changes/not a valid id.json", b"{}")
    engine.objects.put("changes/CHG-x.json", b"garbage")
    engine.objects.put("changes/CHG-y.json", body("CHG-z", 1))  # id does not match the key
    outcomes = sorted(EventApplier.for_engine(engine).apply(e) for e in drain_events(engine))
    # _docsync/ is outside the notification prefixes: S3 does not even send it
    assert outcomes == ["ignored", "invalid", "invalid"]
    assert list(engine.cache.scan_all()) == []


def test_worker_drain_applies_and_acknowledges(settings: Settings) -> None:
    engine = Engine.build(settings)
    for n, doc_id in enumerate(KEYS):
        engine.objects.put(f"changes/{doc_id}.json", body(doc_id, n))
    engine.objects.put(f"changes/{KEYS[0]}.json", body(KEYS[0], 99))
    engine.clients.s3.delete_object(Bucket=settings.bucket, Key=f"changes/{KEYS[1]}.json")
    sqs = engine.clients.sqs
    url = sqs.get_queue_url(QueueName=settings.queue)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="{not json")
    listener = SqsListener.for_engine(engine, workers=4, wait_s=1)
    summary: dict[str, Any] = listener.run(drain=True).as_dict()
    assert summary["received"] == 8  # test event + 6 notifications + 1 malformed
    assert summary["outcomes"]["malformed"] == 1
    assert_cache_equals_s3(engine)
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "0"
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "0"
    dlq = sqs.get_queue_url(QueueName=settings.dlq)["QueueUrl"]
    moved = sqs.receive_message(QueueUrl=dlq, MessageAttributeNames=["All"])["Messages"]
    assert [m["Body"] for m in moved] == ["{not json"]
    assert "docsync-error" in moved[0]["MessageAttributes"]

"""Every way S3 changes an object reaches the cache: multi-delete, copy, multipart upload,
odd keys; and a dry run changes nothing."""

from __future__ import annotations

import time

from engine.app import Engine
from engine.documents import parse_document
from engine.events.apply import EventApplier
from engine.events.worker import SqsListener
from engine.settings import Settings
from tests.conftest import make_settings, snapshot
from tests.integration.test_listener_convergence import body, drain_events


def listen(engine: Engine) -> dict[str, object]:
    return SqsListener.for_engine(engine, workers=4, wait_s=1).run(drain=True).as_dict()


def live_etag(engine: Engine, doc_id: str) -> str | None:
    item = engine.cache.get_item("change", doc_id)
    return str(item["etag"]) if item and item.get("state") == "live" else None


def test_multi_object_delete_tombstones_every_key(engine: Engine) -> None:
    for doc_id in ("CHG-1", "CHG-2", "CHG-3"):
        engine.objects.put(f"changes/{doc_id}.json", body(doc_id, 1))
    listen(engine)
    assert all(live_etag(engine, d) for d in ("CHG-1", "CHG-2", "CHG-3"))
    engine.clients.s3.delete_objects(
        Bucket=engine.settings.bucket,
        Delete={"Objects": [{"Key": f"changes/CHG-{n}.json"} for n in (1, 2, 3)]},
    )
    summary = listen(engine)
    assert summary["applied"] == 3
    for doc_id in ("CHG-1", "CHG-2", "CHG-3"):
        item = engine.cache.get_item("change", doc_id)
        assert item is not None and item["state"] == "deleted"


def test_copy_creates_the_target_entry(engine: Engine) -> None:
    engine.objects.put("changes/CHG-src.json", body("CHG-src", 1))
    listen(engine)
    # the copy carries the source's body, whose id does not match the target key: invalid
    engine.clients.s3.copy_object(
        Bucket=engine.settings.bucket,
        Key="changes/CHG-dst.json",
        CopySource={"Bucket": engine.settings.bucket, "Key": "changes/CHG-src.json"},
    )
    assert listen(engine)["outcomes"] == {"invalid": 1}
    assert live_etag(engine, "CHG-dst") is None
    # a copy of a matching body (e.g. restoring from a backup prefix) is cached
    engine.objects.put("backup/CHG-dst.json", body("CHG-dst", 7))
    engine.clients.s3.copy_object(
        Bucket=engine.settings.bucket,
        Key="changes/CHG-dst.json",
        CopySource={"Bucket": engine.settings.bucket, "Key": "backup/CHG-dst.json"},
    )
    listen(engine)
    assert live_etag(engine, "CHG-dst") == engine.objects.head("changes/CHG-dst.json").etag  # type: ignore[union-attr]


def test_multipart_upload_is_cached_once_with_its_multipart_etag(engine: Engine) -> None:
    s3 = engine.clients.s3
    bucket, key = engine.settings.bucket, "changes/CHG-mp.json"
    data = body("CHG-mp", 1)
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)
    part = s3.upload_part(
        Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=data
    )
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
    )
    summary = listen(engine)
    assert summary["applied"] == 1 and summary["failed"] == 0
    etag = live_etag(engine, "CHG-mp")
    assert etag is not None and etag.endswith("-1")  # not an MD5: S3's multipart form
    assert engine.reader.get("change", "CHG-mp").cache == "hit"


def test_odd_keys_are_decoded_and_ignored_when_not_documents(engine: Engine) -> None:
    odd = ["changes/a b.json", "changes/a+b.json", "changes/100%.json", "changes/café.json"]
    for key in odd:
        engine.objects.put(key, body("CHG-1", 1))
    events = drain_events(engine)
    assert sorted(e.key for e in events) == sorted(odd)
    assert {EventApplier.for_engine(engine).apply(e) for e in events} == {"ignored"}


def test_dry_run_listener_changes_nothing(settings: Settings) -> None:
    engine = Engine.build(settings)
    engine.objects.put("changes/CHG-1.json", body("CHG-1", 1))
    engine.pipeline.put(parse_document(body("CHG-2", 1)))
    before = snapshot(engine)
    sqs = engine.clients.sqs
    url = sqs.get_queue_url(QueueName=settings.queue)["QueueUrl"]
    depth = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    dry = Engine.build(make_settings(str(settings.endpoint_url), dry_run=True))
    summary = SqsListener.for_engine(dry, workers=2, wait_s=1, visibility_s=2).run(drain=True)
    assert summary.received >= 3
    assert snapshot(engine) == before
    # nothing was acknowledged either: the messages come back after their visibility timeout
    # (polled, not slept: a loaded machine may take longer than the 2 s to get there)
    deadline = time.monotonic() + 30
    while True:
        after = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        if after["Attributes"] == depth["Attributes"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert after["Attributes"] == depth["Attributes"]


def test_metrics_count_outcomes_and_lag(engine: Engine) -> None:
    from engine.metrics import REGISTRY

    def sample(name: str, labels: dict[str, str] | None = None) -> float:
        return REGISTRY.get_sample_value(name, labels or {}) or 0.0

    applied = sample("docsync_events_total", {"outcome": "applied"})
    lags = sample("docsync_sync_lag_seconds_count")
    engine.objects.put("changes/CHG-m.json", body("CHG-m", 1))
    engine.objects.put("changes/CHG-m.json", body("CHG-m", 2))
    listen(engine)
    assert sample("docsync_events_total", {"outcome": "applied"}) >= applied + 1
    assert sample("docsync_sync_lag_seconds_count") >= lags + 1
    hits = sample("docsync_reads_total", {"cache": "hit"})
    engine.reader.get("change", "CHG-m")
    assert sample("docsync_reads_total", {"cache": "hit"}) == hits + 1

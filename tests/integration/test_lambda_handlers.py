"""engine/lambdas/listener.py: the Lambda handlers (direct S3 events, SQS batches with partial
batch responses) against a moto server over HTTP, configured only through DOCSYNC_* env, as a
Lambda function is. Events are AWS's own fixtures with the bucket and key rewritten.
"""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from engine.app import Engine
from engine.documents import parse_document
from engine.events.sequencer import normalize_sequencer
from engine.exceptions import NotFoundError
from engine.lambdas import listener, runtime
from engine.logs import configure_logging
from engine.settings import Settings
from tests.conftest import FIXTURES, snapshot
from tests.integration.test_write_pipeline import doc

PUT_SEQUENCER = "0055AED6DCD90281E5"  # s3-put.json
DELETE_SEQUENCER = "0C0F6F405D6ED209E1"  # s3-delete.json


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def doc_body(doc_id: str, **extra: Any) -> bytes:
    """A valid change document (the write pipeline tests' `doc()`), as stored bytes."""
    return doc(doc_id, **extra).body


def key_of(doc_id: str) -> str:
    return f"changes/{doc_id}.json"


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def s3_client(settings: Settings) -> Any:
    return boto3.client("s3", endpoint_url=settings.endpoint_url, region_name=settings.region)


def put_direct(settings: Settings, doc_id: str, **extra: Any) -> bytes:
    """Another application's write: S3 only, the cache knows nothing of it."""
    data = doc_body(doc_id, **extra)
    s3_client(settings).put_object(Bucket=settings.bucket, Key=key_of(doc_id), Body=data)
    return data


def now_z() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def put_event(settings: Settings, doc_id: str, data: bytes) -> dict[str, Any]:
    """s3-put.json for our bucket and key, with the object's real ETag and size."""
    event = load("s3-put.json")
    record = event["Records"][0]
    record["eventTime"] = now_z()
    record["s3"]["bucket"]["name"] = settings.bucket
    record["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{settings.bucket}"
    obj = record["s3"]["object"]
    obj.update(key=key_of(doc_id), size=len(data), eTag=md5(data))
    return event


def delete_event(settings: Settings, doc_id: str) -> dict[str, Any]:
    """s3-delete.json (an unversioned delete: key and sequencer only) for our bucket and key.

    Sent now: a tombstone's TTL runs from the deletion, and the fixture's 2019 time would
    make it born expired (an event that old cannot outlive the queue's retention).
    """
    event = load("s3-delete.json")
    record = event["Records"][0]
    record["eventTime"] = now_z()
    record["s3"]["bucket"]["name"] = settings.bucket
    record["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{settings.bucket}"
    record["s3"]["object"]["key"] = key_of(doc_id)
    return event


def sqs_event(*bodies: tuple[str, str]) -> dict[str, Any]:
    """The Lambda SQS event of sqs-wrapping-s3.json, one record per (messageId, body)."""
    template = load("sqs-wrapping-s3.json")["Records"][0]
    records = []
    for message_id, body in bodies:
        record = copy.deepcopy(template)
        record["messageId"] = message_id
        record["body"] = body
        record["md5OfBody"] = md5(body.encode())
        records.append(record)
    return {"Records": records}


def item(engine: Engine, doc_id: str) -> dict[str, Any] | None:
    return engine.cache.get_item("change", doc_id)


@pytest.fixture
def lambda_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The function's environment: settings only through DOCSYNC_*; a fresh engine per test."""
    monkeypatch.setenv("DOCSYNC_ENDPOINT_URL", str(settings.endpoint_url))
    monkeypatch.setenv("DOCSYNC_AWS_MAX_ATTEMPTS", "2")
    for name in ("POWERTOOLS_DEV", "POWERTOOLS_METRICS_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    runtime.reset_engine()
    yield settings
    runtime.reset_engine()
    configure_logging("json", "WARNING")  # engine() reconfigured it to the function's level


def test_handler_engine_is_built_from_the_environment(lambda_env: Settings) -> None:
    built = runtime.engine()
    assert built.settings.endpoint_url == lambda_env.endpoint_url
    assert built.settings.aws.max_attempts == 2
    assert built.settings.bucket == lambda_env.bucket
    assert runtime.engine() is built  # once per container
    runtime.reset_engine()
    assert runtime.engine() is not built


# -- (a) direct S3 invocation ---------------------------------------------------------------------


def test_s3_handler_caches_the_object_the_event_names(lambda_env: Settings, engine: Engine) -> None:
    data = put_direct(lambda_env, "CHG-1")
    assert item(engine, "CHG-1") is None

    assert listener.s3_handler(put_event(lambda_env, "CHG-1", data), None) == {"events": 1}

    cached = item(engine, "CHG-1")
    assert cached is not None
    assert cached["state"] == "live"
    assert cached["sync_source"] == "event"
    assert cached["etag"] == md5(data)
    assert cached["body"] == data.decode()
    assert cached["sequencer"] == normalize_sequencer(PUT_SEQUENCER)
    assert "p_tx" not in cached
    got = engine.reader.get("change", "CHG-1")
    assert got.cache == "hit"
    assert got.document == json.loads(data)


def test_s3_handler_twice_is_idempotent(lambda_env: Settings, engine: Engine) -> None:
    data = put_direct(lambda_env, "CHG-1")
    event = put_event(lambda_env, "CHG-1", data)
    listener.s3_handler(event, None)
    first = item(engine, "CHG-1")
    listener.s3_handler(event, None)  # at-least-once delivery
    assert item(engine, "CHG-1") == first


# -- (b) SQS batches: partial batch response ------------------------------------------------------


def test_sqs_batch_reports_exactly_the_malformed_and_in_flight_messages(
    lambda_env: Settings, engine: Engine
) -> None:
    valid = put_direct(lambda_env, "CHG-1")
    busy = put_direct(lambda_env, "CHG-2")
    # A pipeline write of CHG-2 is in flight (step 1 done, S3 not yet written): another ETag.
    tx = uuid.uuid4().hex
    engine.cache.begin(
        "change",
        "CHG-2",
        tx=tx,
        etag=md5(b"the document being written"),
        op="put",
        stale_before=datetime.now(UTC) - timedelta(seconds=lambda_env.inflight_grace_s),
        expected_version=None,
    )
    ids = [r["messageId"] for r in load("sqs-wrapping-s3.json")["Records"]]
    valid_id, malformed_id, busy_id = ids[0], ids[1], str(uuid.uuid4())
    event = sqs_event(
        (valid_id, json.dumps(put_event(lambda_env, "CHG-1", valid))),
        (malformed_id, "this is not JSON {"),
        (busy_id, json.dumps(put_event(lambda_env, "CHG-2", busy))),
    )

    response = listener.sqs_handler(event, None)

    failures = response["batchItemFailures"]
    assert sorted(f["itemIdentifier"] for f in failures) == sorted([malformed_id, busy_id])
    assert len(failures) == 2
    applied = item(engine, "CHG-1")
    assert applied is not None
    assert (applied["state"], applied["sync_source"]) == ("live", "event")
    assert applied["etag"] == md5(valid)
    # The in-flight write was left alone: still ours, nothing committed over it.
    pending = item(engine, "CHG-2")
    assert pending is not None
    assert pending["p_tx"] == tx
    assert "state" not in pending


def test_sqs_batch_with_everything_applied_reports_no_failure(
    lambda_env: Settings, engine: Engine
) -> None:
    bodies = []
    for n in range(3):
        data = put_direct(lambda_env, f"CHG-{n}")
        bodies.append((str(uuid.uuid4()), json.dumps(put_event(lambda_env, f"CHG-{n}", data))))
    assert listener.sqs_handler(sqs_event(*bodies), None) == {"batchItemFailures": []}
    for n in range(3):
        cached = item(engine, f"CHG-{n}")
        assert cached is not None and cached["sync_source"] == "event"


# -- (c) deletes leave tombstones -----------------------------------------------------------------


@pytest.mark.parametrize("was_cached", [True, False])
def test_delete_event_for_a_key_gone_from_s3_leaves_a_tombstone(
    lambda_env: Settings, engine: Engine, was_cached: bool
) -> None:
    if was_cached:
        data = doc_body("CHG-5")
        engine.pipeline.put(parse_document(data))
        assert (item(engine, "CHG-5") or {}).get("state") == "live"
        s3_client(lambda_env).delete_object(Bucket=lambda_env.bucket, Key=key_of("CHG-5"))
    # else: DeleteObjects raises ObjectRemoved:Delete even for keys that never existed.

    event = delete_event(lambda_env, "CHG-5")
    assert listener.s3_handler(event, None) == {"events": 1}

    tomb = item(engine, "CHG-5")
    assert tomb is not None
    assert tomb["state"] == "deleted"
    assert tomb["sync_source"] == "event"
    assert tomb["sequencer"] == normalize_sequencer(DELETE_SEQUENCER)
    # Its TTL runs from the deletion time the event carries.
    deleted_at = datetime.fromisoformat(event["Records"][0]["eventTime"].replace("Z", "+00:00"))
    # (the position may be cut to whole seconds, like S3's LastModified)
    deleted_ms = int(deleted_at.timestamp() * 1000)
    assert deleted_ms - 1000 < int(tomb["s3_last_modified"]) <= deleted_ms
    ttl = timedelta(days=lambda_env.tombstone_ttl_days)
    assert abs(int(tomb["expires_at"]) - (deleted_at + ttl).timestamp()) <= 1
    assert "body" not in tomb and "etag" not in tomb
    with pytest.raises(NotFoundError):
        engine.reader.get("change", "CHG-5")

    # A late create event (S3 still does not hold the key) does not resurrect it.
    late = put_event(lambda_env, "CHG-5", doc_body("CHG-5"))
    listener.s3_handler(late, None)
    assert (item(engine, "CHG-5") or {}).get("state") == "deleted"
    assert s3_client(lambda_env).list_objects_v2(Bucket=lambda_env.bucket).get("KeyCount") == 0


# -- (d) the s3:TestEvent -------------------------------------------------------------------------


def test_test_event_is_accepted_and_changes_nothing(lambda_env: Settings, engine: Engine) -> None:
    before = snapshot(engine)
    test_event = load("s3-test-event.json")
    assert listener.s3_handler(test_event, None) == {"events": 0}
    response = listener.sqs_handler(sqs_event(("m-1", json.dumps(test_event))), None)
    assert response == {"batchItemFailures": []}
    assert snapshot(engine) == before


# -- (e) dry run ----------------------------------------------------------------------------------


def test_dry_run_applies_nothing(
    lambda_env: Settings,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    new = put_direct(lambda_env, "CHG-7")  # in S3, not cached: an event would cache it
    engine.pipeline.put(parse_document(doc_body("CHG-8")))  # cached, then deleted from S3:
    s3_client(lambda_env).delete_object(Bucket=lambda_env.bucket, Key=key_of("CHG-8"))
    before = snapshot(engine)
    monkeypatch.setenv("DOCSYNC_DRY_RUN", "1")
    runtime.reset_engine()
    assert runtime.engine().settings.dry_run is True
    capsys.readouterr()

    assert listener.s3_handler(put_event(lambda_env, "CHG-7", new), None) == {"events": 1}
    response = listener.sqs_handler(
        sqs_event(("m-1", json.dumps(delete_event(lambda_env, "CHG-8")))), None
    )

    assert response == {"batchItemFailures": []}
    assert snapshot(engine) == before
    assert item(engine, "CHG-7") is None
    assert (item(engine, "CHG-8") or {}).get("state") == "live"
    # Invariant 7: the mutating calls were logged, not made, and every log line says so.
    logs = [
        json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")
    ]
    writes = [line for line in logs if line["msg"].startswith("dry run: dynamodb.")]
    assert len(writes) == 2, logs  # the new entry, the tombstone: PutItem or UpdateItem each
    assert logs and all(line.get("dry_run") is True for line in logs)


# -- (f) metrics as CloudWatch EMF ----------------------------------------------------------------


def emf_lines(out: str) -> list[dict[str, Any]]:
    lines = []
    for line in out.splitlines():
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict) and "_aws" in parsed:
            lines.append(parsed)
    return lines


def metric_names(emf: dict[str, Any]) -> set[str]:
    return {m["Name"] for d in emf["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}


def test_handlers_emit_emf_metrics_on_stdout(
    lambda_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    data = put_direct(lambda_env, "CHG-1")
    listener.s3_handler(put_event(lambda_env, "CHG-1", data), None)
    out = capsys.readouterr().out
    (emf,) = emf_lines(out)
    directives = emf["_aws"]["CloudWatchMetrics"]
    assert directives and all(d["Namespace"] == "docsync" for d in directives)
    assert isinstance(emf["_aws"]["Timestamp"], int)
    assert emf["service"] == "listener"
    assert {"events_received", "events_applied", "events_applied_total"} <= metric_names(emf)
    assert emf["events_applied_total"] == [1.0]

    data2 = put_direct(lambda_env, "CHG-2")
    listener.sqs_handler(
        sqs_event(("m-2", json.dumps(put_event(lambda_env, "CHG-2", data2)))), None
    )
    (emf2,) = emf_lines(capsys.readouterr().out)
    assert emf2["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "docsync"
    assert {"messages_received", "events_applied"} <= metric_names(emf2)
    assert emf2["messages_received"] == [1.0]

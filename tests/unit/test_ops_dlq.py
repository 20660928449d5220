"""DLQ decoding, routing and batching: pure functions over the messages SQS returns."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.ops.dlq import (
    PREVIEW_CHARS,
    Routes,
    approximate,
    decode,
    destination,
    forward_attributes,
    oldest,
)
from engine.store.queue import BATCH_BYTES, queue_name, size_batches
from tests.conftest import FIXTURES

NOW = datetime.now(UTC)
ROUTES = Routes(events="events-q", tasks="tasks-q")
TASK = json.dumps(
    {"kind": "reconcile-shard", "run_id": "r1", "mode": "report", "index": 2, "of": 8, "shard": {}}
)


def message(body: str, sent: datetime = NOW, **attributes: Any) -> dict[str, Any]:
    attrs = {"SentTimestamp": str(int(sent.timestamp() * 1000)), "ApproximateReceiveCount": "3"}
    attrs.update(attributes)
    return {"MessageId": f"m-{hash(body) & 0xFFFF}", "Body": body, "Attributes": attrs}


def test_an_s3_event_shows_bucket_decoded_key_and_name() -> None:
    body = (FIXTURES / "s3-put.json").read_text()
    payload = json.loads(body)
    payload["Records"][0]["s3"]["object"]["key"] = "changes/a+b%2Fc.json"
    decoded = decode(message(json.dumps(payload), NOW - timedelta(minutes=5)), NOW)
    assert decoded["kind"] == "s3-event"
    assert decoded["events"] == [
        {"bucket": "mybucket", "key": "changes/a b/c.json", "name": "ObjectCreated:Put"}
    ]
    assert decoded["receive_count"] == 3
    assert 299 <= decoded["age_s"] <= 301
    assert decoded["body"] is None and decoded["error"] is None


def test_an_sns_wrapped_event_is_decoded_too() -> None:
    decoded = decode(message((FIXTURES / "sns-sqs-wrapping-s3.json").read_text()), NOW)
    assert decoded["kind"] == "s3-event"
    assert [e["name"] for e in decoded["events"]] == ["ObjectCreated:Put"]


def test_a_malformed_message_is_shown_raw_and_truncated_with_the_listener_reason() -> None:
    raw = "x" * (PREVIEW_CHARS * 3)
    msg = message(raw)
    msg["MessageAttributes"] = {"docsync-error": {"DataType": "String", "StringValue": "bad"}}
    decoded = decode(msg, NOW)
    assert decoded["kind"] == "malformed"
    assert decoded["reason"] == "bad"
    assert "not JSON" in decoded["error"]
    assert decoded["body"].startswith("xxx") and len(decoded["body"]) == PREVIEW_CHARS + 1


def test_a_json_body_that_is_no_notification_is_malformed() -> None:
    decoded = decode(message('{"hello": 1}'), NOW)
    assert decoded["kind"] == "malformed" and decoded["body"] == '{"hello": 1}'


def test_test_events_and_reconcile_tasks_are_named() -> None:
    test_event = decode(message((FIXTURES / "s3-test-event.json").read_text()), NOW)
    assert test_event["kind"] == "s3-test-event"
    task = decode(message(TASK), NOW)
    assert task["kind"] == "reconcile-task"
    assert task["task"] == {"run_id": "r1", "mode": "report", "index": 2, "of": 8}


def test_routing_prefers_sqs_own_source_then_the_shape() -> None:
    source = "arn:aws:sqs:eu-west-1:123456789012:somewhere-else"
    assert destination(message("garbage", DeadLetterQueueSourceArn=source), ROUTES) == (
        "somewhere-else"
    )
    assert destination(message(TASK), ROUTES) == "tasks-q"
    assert destination(message((FIXTURES / "s3-put.json").read_text()), ROUTES) == "events-q"
    assert destination(message("garbage"), ROUTES) == "events-q"
    assert queue_name(source) == "somewhere-else"


def test_oldest_is_the_earliest_sent_message_of_the_sample() -> None:
    sample = [decode(message(f'"{n}"', NOW - timedelta(hours=n)), NOW) for n in (1, 5, 3)]
    first = oldest(sample)
    assert first is not None
    assert first["message_id"] == sample[1]["message_id"]
    assert 5 * 3600 - 1 <= first["age_s"] <= 5 * 3600 + 1
    assert oldest([]) is None


def test_approximate_counts_read_the_queue_attributes() -> None:
    attrs = {
        "ApproximateNumberOfMessages": "7",
        "ApproximateNumberOfMessagesNotVisible": "2",
        "ApproximateNumberOfMessagesDelayed": "1",
    }
    assert approximate(attrs) == {"visible": 7, "in_flight": 2, "delayed": 1}
    assert approximate({}) == {"visible": 0, "in_flight": 0, "delayed": 0}


def test_forwarded_attributes_drop_the_listener_reason_and_keep_the_rest() -> None:
    msg = message("x")
    msg["MessageAttributes"] = {
        "docsync-error": {"DataType": "String", "StringValue": "bad"},
        "trace": {"DataType": "String", "StringValue": "t-1", "StringListValues": []},
    }
    assert forward_attributes(msg) == {"trace": {"DataType": "String", "StringValue": "t-1"}}


def test_send_batches_respect_ten_entries_and_the_byte_limit() -> None:
    small = [{"Id": str(i), "MessageBody": "x"} for i in range(23)]
    assert [len(b) for b in size_batches(small)] == [10, 10, 3]
    big = [{"Id": str(i), "MessageBody": "y" * (64 * 1024)} for i in range(9)]
    batches = list(size_batches(big))
    assert all(sum(len(e["MessageBody"]) for e in b) <= BATCH_BYTES for b in batches)
    assert [len(b) for b in batches] == [4, 4, 1]
    assert [e["Id"] for b in batches for e in b] == [str(i) for i in range(9)]

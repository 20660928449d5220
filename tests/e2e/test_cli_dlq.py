"""`docsync dlq` as an operator runs it: peek without consuming, redrive, then the listener."""

from __future__ import annotations

import json
import re
from typing import Any

from engine.app import Engine
from engine.cli.ops_cmds import dlq_redrive, dlq_show
from engine.documents import parse_document
from engine.sample import sample_documents
from tests.e2e.conftest import DLQ, QUEUE, Aws, Cli

TASKS = "docsync-reconcile-tasks"


def url(aws: Aws, name: str) -> str:
    return str(aws.sqs.get_queue_url(QueueName=name)["QueueUrl"])


def depth(aws: Aws, name: str) -> tuple[int, int]:
    """(visible, in flight) of a queue."""
    attrs = aws.sqs.get_queue_attributes(QueueUrl=url(aws, name), AttributeNames=["All"])
    a = attrs["Attributes"]
    return int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"])


def dead_letter_the_event_queue(aws: Aws) -> None:
    """Let SQS's own redrive policy move what the event queue holds to the DLQ."""
    queue = url(aws, QUEUE)
    attrs = aws.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    strict = json.loads(attrs["RedrivePolicy"]) | {"maxReceiveCount": "1"}
    aws.sqs.set_queue_attributes(QueueUrl=queue, Attributes={"RedrivePolicy": json.dumps(strict)})
    while aws.sqs.receive_message(QueueUrl=queue, VisibilityTimeout=0, WaitTimeSeconds=1).get(
        "Messages"
    ):
        pass  # each message's second receive moves it
    original = {"RedrivePolicy": attrs["RedrivePolicy"]}
    aws.sqs.set_queue_attributes(QueueUrl=queue, Attributes=original)


def plant(ready: Engine, aws: Aws) -> tuple[str, str]:
    """An S3 create event (and S3's test event) dead-lettered by SQS, and a malformed message
    the listener moved there itself. Returns the object's key and ETag."""
    doc = parse_document(next(iter(sample_documents(1, 11))))
    key = f"{ready.settings.prefixes[doc.type]}{doc.id}.json"
    etag = ready.objects.put(key, doc.body).etag
    dead_letter_the_event_queue(aws)
    aws.sqs.send_message(
        QueueUrl=url(aws, DLQ),
        MessageBody="{not json" + "x" * 1000,
        MessageAttributes={
            "docsync-error": {"DataType": "String", "StringValue": "message body is not JSON"}
        },
    )
    assert depth(aws, DLQ) == (3, 0) and depth(aws, QUEUE) == (0, 0)
    return key, etag


def test_show_peeks_then_redrive_moves_back_and_listen_applies(
    cli: Cli, aws: Aws, ready: Engine
) -> None:
    key, etag = plant(ready, aws)

    shown: dict[str, Any] = cli("dlq", "--format", "json").json()
    assert shown["approximate"] == {"visible": 3, "in_flight": 0, "delayed": 0}
    assert shown["sampled"] == 3
    kinds = {m["kind"]: m for m in shown["sample"]}
    assert set(kinds) == {"s3-event", "s3-test-event", "malformed"}
    assert kinds["s3-event"]["events"] == [
        {"bucket": ready.settings.bucket, "key": key, "name": "ObjectCreated:Put"}
    ]
    assert kinds["s3-event"]["receive_count"] >= 2  # received on the queue, then peeked
    malformed = kinds["malformed"]
    assert malformed["reason"] == "message body is not JSON"
    assert malformed["body"].startswith("{not json") and len(malformed["body"]) < 400
    assert shown["oldest"]["message_id"] == shown["sample"][0]["message_id"]
    assert shown["oldest"]["age_s"] >= 0
    assert shown["peek"]["returned_at_once"] is True
    assert shown["move_tasks"] is None  # moto has no message move tasks
    # nothing was consumed, and nothing is left hidden
    assert depth(aws, DLQ) == (3, 0)
    again = cli("dlq", "show", "--format", "json", "--sample", "2").json()
    assert again["sampled"] == 2 and depth(aws, DLQ) == (3, 0)
    assert all(f'"{field}"' in str(dlq_show.help) for field in shown)  # the documented fields

    dry = cli("dlq", "redrive", "--dry-run", "--format", "json").json()
    assert (dry["dry_run"], dry["would_move"], dry["moved"]) == (True, 3, 0)
    assert depth(aws, DLQ) == (3, 0) and depth(aws, QUEUE) == (0, 0)

    moved = cli("dlq", "redrive", "--format", "json").json()
    assert moved["method"] == "copy" and "not implemented" in moved["fallback_reason"]
    assert (moved["moved"], moved["failed"], moved["not_deleted"]) == (3, 0, 0)
    assert moved["by_destination"] == {QUEUE: 3}
    assert depth(aws, DLQ) == (0, 0) and depth(aws, QUEUE) == (3, 0)
    assert all(f'"{field}"' in str(dlq_redrive.help) for field in moved)

    assert ready.cache.get_item(*_type_and_id(key)) is None
    summary = cli("listen", "--drain", "--wait", "1").json()
    assert summary["applied"] == 1 and summary["outcomes"]["malformed"] == 1
    item = ready.cache.get_item(*_type_and_id(key))
    assert item is not None and item["state"] == "live" and item["etag"] == etag
    # the malformed message went straight back: the listener's own dead-letter path
    back = cli("dlq", "--format", "json").json()
    assert [m["kind"] for m in back["sample"]] == ["malformed"]


def _type_and_id(key: str) -> tuple[str, str]:
    prefix, name = key.split("/", 1)
    type_name = {"changes": "change", "announcements": "announcement"}[prefix]
    return type_name, re.sub(r"\.json$", "", name)


def test_reconcile_tasks_go_back_to_the_work_queue_and_max_bounds_a_redrive(
    cli: Cli, aws: Aws, ready: Engine
) -> None:
    task = {
        "kind": "reconcile-shard", "run_id": "r-1", "mode": "report", "index": 0, "of": 1,
        "shard": {},
    }  # fmt: skip
    dlq = url(aws, DLQ)
    aws.sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps(task))
    for n in range(3):
        aws.sqs.send_message(QueueUrl=dlq, MessageBody=f"garbage {n}")
    shown = cli("dlq", "--format", "json").json()
    assert sorted(m["kind"] for m in shown["sample"]) == ["malformed"] * 3 + ["reconcile-task"]
    text = cli("dlq", "--format", "text", env={"COLUMNS": "200"}).stdout
    assert "~4 visible" in text and "reconcile-task" in text and "garbage 0" in text
    doctor = {c["check"]: c for c in cli("doctor", "--format", "json").json()["checks"]}
    assert doctor["dlq.depth"]["status"] == "warn" and "4 message" in doctor["dlq.depth"]["detail"]

    one = cli("dlq", "redrive", "--max", "1", "--format", "json").json()
    assert (one["method"], one["moved"]) == ("copy", 1)
    assert depth(aws, DLQ)[0] == 3

    rest = cli("dlq", "redrive", "--format", "json").json()
    assert rest["moved"] == 3 and depth(aws, DLQ) == (0, 0)
    moved = {**one["by_destination"]}
    for name, count in rest["by_destination"].items():
        moved[name] = moved.get(name, 0) + count
    assert moved == {QUEUE: 3, TASKS: 1}
    bodies = aws.sqs.receive_message(QueueUrl=url(aws, TASKS), WaitTimeSeconds=1)["Messages"]
    assert [json.loads(m["Body"]) for m in bodies] == [task]


def test_usage_errors_and_a_missing_dlq(cli: Cli, aws: Aws, ready: Engine) -> None:
    wrong_place = cli("dlq", "--format", "json", "redrive", expect=2)
    assert "after the subcommand" in wrong_place.stderr
    clash = cli("dlq", "redrive", "--max", "1", "--method", "move-task", "--format", "json",
                expect=2)  # fmt: skip
    assert "--max" in clash.json()["error"]
    aws.sqs.delete_queue(QueueUrl=url(aws, DLQ))
    missing = cli("dlq", "--format", "json", expect=3)
    assert DLQ in missing.json()["error"]

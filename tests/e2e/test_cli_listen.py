"""`docsync listen` as a user runs it: drain, SIGTERM, and SIGKILL mid-batch."""

from __future__ import annotations

import json
import signal
import subprocess
import time

from engine.app import Engine
from engine.documents import parse_document
from engine.sample import sample_documents
from tests.e2e.conftest import DOCSYNC, QUEUE, Aws, Cli


def put_direct(engine: Engine, count: int, seed: int = 3) -> dict[str, str]:
    """Objects written straight to S3 (not through docsync): key → ETag."""
    etags = {}
    for raw in sample_documents(count, seed):
        doc = parse_document(raw)
        key = f"{engine.settings.prefixes[doc.type]}{doc.id}.json"
        etags[key] = engine.objects.put(key, doc.body).etag
    return etags


def cached(aws: Aws) -> dict[str, str]:
    return {
        item["s3_key"]: item.get("etag", "")
        for item in aws.items().values()
        if item.get("state") == "live"
    }


def queue_depth(aws: Aws) -> int:
    url = aws.sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    attrs = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def test_drain_applies_direct_writes_and_deletes(cli: Cli, aws: Aws, ready: Engine) -> None:
    etags = put_direct(ready, 12)
    gone = sorted(etags)[0]
    aws.s3.delete_object(Bucket=ready.settings.bucket, Key=gone)
    aws.sqs.send_message(
        QueueUrl=aws.sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"], MessageBody="garbage"
    )
    summary = cli("listen", "--drain", "--wait", "1").json()
    assert summary["received"] == 15  # test event + 12 creates + 1 delete + garbage
    # the deleted key's create and delete events: one tombstones it, the other is a duplicate
    assert summary["applied"] + summary["skipped"] == 14 and summary["failed"] == 1
    assert summary["applied"] >= 12
    assert summary["outcomes"]["malformed"] == 1
    etags.pop(gone)
    assert cached(aws) == etags
    tombstones = [i for i in aws.items().values() if i["s3_key"] == gone]
    assert [t["state"] for t in tombstones] == ["deleted"]
    assert queue_depth(aws) == 0


def test_sigkill_mid_batch_loses_nothing(cli: Cli, aws: Aws, ready: Engine) -> None:
    etags = put_direct(ready, 80)
    proc = subprocess.Popen(
        [str(DOCSYNC), "listen", "--workers", "4", "--wait", "1", "--visibility", "3"],
        env=cli.env(),
        cwd=cli.cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while len(cached(aws)) < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    done = cached(aws)
    assert 5 <= len(done) < len(etags), "the kill should land mid-run"
    # Nothing acknowledged that was not applied: every uncached key still has its message.
    assert queue_depth(aws) >= len(etags) - len(done)
    # The dead worker's messages become visible again after their 3 s: drain until they are
    # all applied (a fixed sleep would assume how fast this machine is).
    deadline = time.monotonic() + 60
    while True:
        time.sleep(1.0)
        summary = cli("listen", "--drain", "--wait", "1").json()
        assert summary["failed"] == 0
        if cached(aws) == etags or time.monotonic() > deadline:
            break
    assert cached(aws) == etags
    assert queue_depth(aws) == 0


def test_sigterm_finishes_in_flight_work_and_exits_zero(cli: Cli, aws: Aws, ready: Engine) -> None:
    etags = put_direct(ready, 40)
    proc = subprocess.Popen(
        [str(DOCSYNC), "listen", "--workers", "4", "--wait", "1"],
        env=cli.env(),
        cwd=cli.cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 60
    while len(cached(aws)) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    summary = json.loads(out)
    done = cached(aws)
    assert summary["applied"] == len(done) <= len(etags)
    # every message is either applied (and deleted) or still on the queue
    assert queue_depth(aws) == len(etags) - len(done)

"""`docsync backfill`: objects written straight to S3 are brought into the cache."""

from __future__ import annotations

import json
from typing import Any

from engine.app import Engine
from engine.sample import sample_documents
from tests.e2e.conftest import BUCKET, Aws, Cli, md5

PREFIX = {"change": "changes/", "announcement": "announcements/"}


def upload(aws: Aws) -> list[dict[str, Any]]:
    """Eight valid documents of both types and one object that is not JSON, via boto3 only."""
    docs = sample_documents(8, seed=13)
    assert {d["object_type"] for d in docs} == {"change", "announcement"}
    for doc in docs:
        aws.s3.put_object(
            Bucket=BUCKET,
            Key=f"{PREFIX[doc['object_type']]}{doc['id']}.json",
            Body=json.dumps(doc).encode(),
        )
    aws.s3.put_object(Bucket=BUCKET, Key="changes/CHG-GARBAGE.json", Body=b"\x00{not json")
    return docs


def test_backfill_fills_the_cache_from_s3(cli: Cli, ready: Engine, aws: Aws) -> None:
    docs = upload(aws)
    assert aws.items() == {}

    counts = cli("backfill").json()

    assert counts["listed"] == len(docs) + 1
    assert counts["filled"] == len(docs)
    assert counts["invalid"] == 1
    assert counts["failed"] == 0
    assert counts["already_current"] == 0
    items = aws.items()
    assert set(items) == {f"{d['object_type']}#{d['id']}" for d in docs}
    objects = aws.objects()
    for doc in docs:
        item = items[f"{doc['object_type']}#{doc['id']}"]
        key = f"{PREFIX[doc['object_type']]}{doc['id']}.json"
        assert (item["state"], item["sync_source"]) == ("live", "backfill")
        assert item["etag"] == md5(objects[key])

    # A read is now a cache hit, and leaves the backfilled entry as it was.
    doc = docs[0]
    run = cli("get", "--type", doc["object_type"], doc["id"])
    assert run.json() == doc
    gets = [line for line in run.logs() if line.get("op") == "get"]
    assert gets and gets[-1].get("cache") == "hit" and gets[-1].get("source") == "cache", run.stderr
    assert aws.items() == items

    # A second run finds everything current.
    again = cli("backfill").json()
    assert (again["filled"], again["already_current"], again["invalid"]) == (0, len(docs), 1)


def test_backfill_dry_run_writes_nothing(cli: Cli, ready: Engine, aws: Aws) -> None:
    docs = upload(aws)
    objects = aws.objects()

    counts = cli("backfill", "--dry-run").json()

    assert counts["dry_run"] is True
    assert counts["listed"] == len(docs) + 1
    assert counts["filled"] == len(docs)  # what it would fill
    assert counts["invalid"] == 1
    assert aws.items() == {}
    assert aws.objects() == objects

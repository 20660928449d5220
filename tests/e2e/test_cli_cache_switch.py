"""`cache_enabled = false`, the rollout/rollback mode, end to end: the CLI writes and reads S3
only (DynamoDB untouched); turning the cache back on is a backfill, then a clean reconcile
report; a retried delete succeeds in both modes."""

from __future__ import annotations

import json
from typing import Any

from engine.app import Engine
from engine.readmetrics.item import is_reserved
from engine.sample import sample_documents
from tests.e2e.conftest import BUCKET, Aws, Cli

OFF = {"DOCSYNC_CACHE_ENABLED": "false"}


def changes(count: int) -> list[dict[str, Any]]:
    docs = [d for d in sample_documents(40, 3, days=60) if d["object_type"] == "change"]
    return docs[:count]


def test_cache_switch_off_then_on(cli: Cli, ready: Engine, aws: Aws, tmp_path: Any) -> None:
    docs = changes(4)
    for doc in docs:
        path = tmp_path / f"{doc['id']}.json"
        path.write_text(json.dumps(doc))
        written = cli("put", "--type", "change", path, env=OFF).json()
        assert written["id"] == doc["id"] and written["version"] is None
    assert aws.items() == {}  # S3 only: not one cache item
    keys_in_s3 = {o["Key"] for o in aws.s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert keys_in_s3 == {f"changes/{d['id']}.json" for d in docs}

    got = cli("get", "--type", "change", docs[0]["id"], env=OFF)
    assert got.json() == docs[0]
    assert [line.get("cache") for line in got.logs() if line.get("op") == "get"] == ["off"]
    page = cli("query", "--type", "change", "--all", env=OFF).json()
    assert page["source"] == "s3" and len(page["items"]) == 4
    customer = docs[0]["customer_codes"][0]
    counted = cli("query", "--type", "change", "--count", "--customer", customer, env=OFF).json()
    assert counted == {
        "total": sum(customer in d["customer_codes"] for d in docs),
        "source": "s3",
    }
    for _ in range(2):  # deleting twice: the second is already absent, both exit 0
        gone = cli("delete", "--type", "change", docs[3]["id"], env=OFF).json()
    assert (gone["deleted"], gone["already_absent"]) == (False, True)
    assert aws.items() == {}

    # Back on: backfill, then a reconcile report with no drift; reads are hits again.
    filled = cli("backfill").json()
    assert filled["filled"] == 3, filled
    report = cli("reconcile").json()
    assert sum(report["counts"][c] for c in ("missing", "stale", "orphaned")) == 0, report
    assert report["counts"]["in_sync"] == 3
    # the reconcile's exit flush (its capacity, for `docsync stats`) is a reserved item
    assert {k for k in aws.items() if not is_reserved(k)} == {f"change#{d['id']}" for d in docs[:3]}
    assert len(aws.index_items()) == sum(len(d["customer_codes"]) for d in docs[:3])
    hit = cli("get", "--type", "change", docs[0]["id"])
    assert [line.get("cache") for line in hit.logs() if line.get("op") == "get"] == ["hit"]
    on = cli("query", "--type", "change", "--customer", customer).json()
    assert on["source"] == "cache"
    assert {i["id"] for i in on["items"]} == {
        d["id"] for d in docs[:3] if customer in d["customer_codes"]
    }

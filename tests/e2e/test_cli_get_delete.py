"""`docsync get` and `docsync delete`: documents as written, not-found exits, dry run."""

from __future__ import annotations

from typing import Any

from engine.app import Engine
from engine.sample import sample_documents
from tests.e2e.conftest import BUCKET, Aws, Cli, seed


def a_change(seed_: int = 5) -> dict[str, Any]:
    doc = next(d for d in sample_documents(10, seed_) if d["object_type"] == "change")
    # Fields no model knows about are kept as written.
    return doc | {"links": [{"rel": "ticket", "href": "https://example.test/T-1"}], "note": "é ✓"}


def test_get_returns_the_document_as_written(cli: Cli, ready: Engine, aws: Aws) -> None:
    doc = a_change()
    seed(ready, [doc])

    run = cli("get", "--type", "change", doc["id"])
    assert run.json() == doc
    ops = [line for line in run.logs() if line.get("op") == "get"]
    assert ops and ops[-1].get("source") == "cache", run.stderr

    missing = cli("get", "--type", "change", "CHG-NOPE", expect=3)
    assert "CHG-NOPE" in missing.stderr
    assert missing.json()["exit_code"] == 3

    bogus = cli("get", "--type", "bogus", doc["id"], expect=2)
    assert "--type" in bogus.stderr and "bogus" in bogus.stderr, str(bogus)
    assert bogus.stdout == ""


def test_delete_removes_from_s3_and_cache(cli: Cli, ready: Engine, aws: Aws) -> None:
    doc = a_change()
    seed(ready, [doc])
    key = f"changes/{doc['id']}.json"

    result = cli("delete", "--type", "change", doc["id"]).json()
    assert result == {"id": doc["id"], "type": "change", "deleted": True, "already_absent": False}
    assert aws.s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0
    item = aws.items()[f"change#{doc['id']}"]
    assert item["state"] == "deleted"
    assert "body" not in item and "tpk" not in item  # a tombstone, out of every index

    gone = cli("get", "--type", "change", doc["id"], expect=3)
    assert gone.json()["exit_code"] == 3

    # Deleting twice succeeds (a retried delete): exit 0, already absent.
    twice = cli("delete", "--type", "change", doc["id"]).json()
    assert twice == {"id": doc["id"], "type": "change", "deleted": False, "already_absent": True}
    assert aws.items()[f"change#{doc['id']}"]["state"] == "deleted"
    never = cli("delete", "--type", "change", "CHG-NEVER").json()
    assert never == {"id": "CHG-NEVER", "type": "change", "deleted": False, "already_absent": True}
    # The intent for the id that never existed was dropped: no item for it.
    assert set(aws.items()) == {f"change#{doc['id']}"}
    assert key not in {o["Key"] for o in aws.s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def test_delete_dry_run_leaves_the_document(cli: Cli, ready: Engine, aws: Aws) -> None:
    doc = a_change()
    seed(ready, [doc])
    before_objects, before_items = aws.objects(), aws.items()

    result = cli("delete", "--type", "change", "--dry-run", doc["id"]).json()

    assert result["dry_run"] is True
    assert result["deleted"] is False
    assert aws.objects() == before_objects
    assert aws.items() == before_items
    assert ready.reader.get("change", doc["id"]).document == doc

"""`docsync put`: the write pipeline from a file, stdin or JSON Lines; validation; dry run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.app import Engine
from engine.sample import sample_documents
from tests.e2e.conftest import BUCKET, Aws, Cli, md5, seed, write_json, write_jsonl


def changes(count: int, seed_: int = 11) -> list[dict[str, Any]]:
    docs = [d for d in sample_documents(count * 3, seed_) if d["object_type"] == "change"]
    assert len(docs) >= count
    return docs[:count]


def test_put_file_is_versioned_idempotent_and_reads_stdin(
    cli: Cli, ready: Engine, aws: Aws, tmp_path: Path
) -> None:
    doc, other = changes(2)
    key = f"changes/{doc['id']}.json"

    first = cli("put", "--type", "change", write_json(tmp_path / "doc.json", doc)).json()
    assert set(first) == {"id", "type", "etag", "version"}
    assert (first["id"], first["type"], first["version"]) == (doc["id"], "change", 1)
    stored = aws.s3.get_object(Bucket=BUCKET, Key=key)
    body = stored["Body"].read()
    assert json.loads(body) == doc
    assert first["etag"] == md5(body) == stored["ETag"].strip('"')

    # The same content again: same version, S3 not rewritten.
    again = cli("put", "--type", "change", tmp_path / "doc.json").json()
    assert again == first
    assert aws.s3.head_object(Bucket=BUCKET, Key=key)["LastModified"] == stored["LastModified"]

    changed = doc | {"status": "implemented", "title": doc["title"] + " (done)"}
    second = cli("put", "--type", "change", write_json(tmp_path / "changed.json", changed)).json()
    assert (second["id"], second["version"]) == (doc["id"], 2)
    body = aws.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert json.loads(body) == changed
    assert second["etag"] == md5(body) != first["etag"]
    item = aws.items()[f"change#{doc['id']}"]
    assert (item["version"], item["etag"], item["state"]) == (2, second["etag"], "live")
    assert not any(name.startswith("p_") for name in item), item  # no write left in flight

    piped = cli("put", "--type", "change", "-", stdin=json.dumps(other)).json()
    assert (piped["id"], piped["version"]) == (other["id"], 1)
    body = aws.s3.get_object(Bucket=BUCKET, Key=f"changes/{other['id']}.json")["Body"].read()
    assert json.loads(body) == other
    assert piped["etag"] == md5(body)


def test_put_json_lines_writes_every_document(
    cli: Cli, ready: Engine, aws: Aws, tmp_path: Path
) -> None:
    docs = changes(6)
    source = write_jsonl(tmp_path / "docs.jsonl", [json.dumps(d) for d in docs])

    results = cli("put", "--type", "change", source).json_lines()

    assert len(results) == len(docs)
    assert {r["id"] for r in results} == {d["id"] for d in docs}
    objects = aws.objects()
    assert set(objects) == {f"changes/{d['id']}.json" for d in docs}
    items = aws.items()
    for result in results:
        assert set(result) == {"id", "type", "etag", "version"}
        assert (result["type"], result["version"]) == ("change", 1)
        body = objects[f"changes/{result['id']}.json"]
        assert result["etag"] == md5(body)
        assert items[f"change#{result['id']}"]["etag"] == result["etag"]
    assert {json.dumps(json.loads(b), sort_keys=True) for b in objects.values()} == {
        json.dumps(d, sort_keys=True) for d in docs
    }


def test_put_json_lines_with_one_invalid_line_writes_nothing(
    cli: Cli, ready: Engine, aws: Aws, tmp_path: Path
) -> None:
    docs = changes(5)
    lines = [json.dumps(d) for d in docs]
    broken = dict(docs[2])
    del broken["title"]
    lines[2] = json.dumps(broken)
    source = write_jsonl(tmp_path / "docs.jsonl", lines)

    run = cli("put", "--type", "change", source, expect=2)

    assert "line 3" in run.stderr and "title" in run.stderr, str(run)
    error = run.json()
    assert error["exit_code"] == 2
    assert "line 3" in error["error"] and "title" in error["error"]
    assert aws.s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0
    assert aws.items() == {}


@pytest.mark.parametrize(
    ("field", "mutate"),
    [
        ("id", lambda d: d | {"id": "bad id/with spaces"}),
        ("title", lambda d: {k: v for k, v in d.items() if k != "title"}),
    ],
    ids=["bad-id", "missing-title"],
)
def test_put_invalid_document_names_the_field(
    cli: Cli, ready: Engine, aws: Aws, tmp_path: Path, field: str, mutate: Any
) -> None:
    doc = mutate(changes(1)[0])

    run = cli("put", "--type", "change", write_json(tmp_path / "bad.json", doc), expect=2)

    assert run.stderr.startswith("docsync: error:"), str(run)
    assert f"'{field}'" in run.stderr, str(run)
    error = run.json()
    assert error["exit_code"] == 2
    assert field in error["fields"]
    assert f"'{field}'" in error["error"]
    assert aws.s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0
    assert aws.items() == {}


def test_put_with_a_wrong_expected_version_fails_and_changes_nothing(
    cli: Cli, ready: Engine, aws: Aws, tmp_path: Path
) -> None:
    doc = changes(1)[0]
    seed(ready, [doc])
    before_objects, before_items = aws.objects(), aws.items()
    assert before_items[f"change#{doc['id']}"]["version"] == 1

    changed = doc | {"status": "approved", "risk": "high"}
    run = cli(
        "put",
        "--type",
        "change",
        "--expected-version",
        "5",
        write_json(tmp_path / "changed.json", changed),
        expect=1,
    )

    assert "expected version 5" in run.stderr, str(run)
    error = run.json()
    assert error["exit_code"] == 1
    assert aws.objects() == before_objects
    assert aws.items() == before_items


def test_put_dry_run_changes_nothing(cli: Cli, ready: Engine, aws: Aws, tmp_path: Path) -> None:
    doc, fresh = changes(2)
    seed(ready, [doc])
    before_objects, before_items = aws.objects(), aws.items()
    changed = doc | {"status": "cancelled"}
    source = write_jsonl(tmp_path / "two.jsonl", [json.dumps(changed), json.dumps(fresh)])
    single = write_json(tmp_path / "changed.json", changed)

    result = cli("put", "--type", "change", "--dry-run", single).json()
    assert result["dry_run"] is True
    assert result["version"] is None
    assert (result["id"], result["type"]) == (doc["id"], "change")
    assert result["etag"] == md5(json.dumps(changed, separators=(",", ":")).encode())
    assert aws.objects() == before_objects
    assert aws.items() == before_items

    # DOCSYNC_DRY_RUN=true does the same, for a JSON Lines batch.
    batch = cli("put", "--type", "change", source, env={"DOCSYNC_DRY_RUN": "true"}).json_lines()
    assert {r["id"] for r in batch} == {doc["id"], fresh["id"]}
    assert all(r["version"] is None for r in batch)
    assert aws.objects() == before_objects
    assert aws.items() == before_items

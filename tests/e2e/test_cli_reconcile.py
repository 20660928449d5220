"""`docsync reconcile` as a user runs it: drift planted with boto3 behind the engine's back,
then the report (JSON contract), `--fail-on-drift`, `--repair`, `--report-dir`, the copy in S3,
`--history`, `--repair --dry-run` and `--type`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engine import keys
from engine.app import Engine
from tests.e2e.conftest import BUCKET, Aws, Cli, md5, seed

PREFIX = {"change": "changes/", "announcement": "announcements/"}
REPORTS = "_docsync/reports/"
CLASSES = ("missing", "stale", "orphaned", "invalid", "in_sync")
DRIFT = ("missing", "stale", "orphaned", "invalid")

# Ids whose first characters fall in different shards (and key-index partitions).
CHANGE_IDS = ["-dash", "0-base", "A-one", "Z-two", "_under", "a-three", "m.four", "z-five"]
ANNOUNCEMENT_IDS = ["ANN-1", "b-2", "y-3"]
GARBAGE_KEY = "changes/GARBAGE.json"  # a document key, but not a document
ODD_KEY = "changes/bad key+é.json"  # not a document key at all (space, `+`, non-ASCII)

# The drift planted by `plant`, by key.
PLANTED = {
    "changes/A-one.json": "missing",
    "announcements/b-2.json": "missing",
    "changes/Z-two.json": "stale",
    "changes/m.four.json": "stale",
    "changes/z-five.json": "orphaned",
    GARBAGE_KEY: "invalid",
    ODD_KEY: "invalid",
}
EXPECTED = {"missing": 2, "stale": 2, "orphaned": 1, "invalid": 2, "in_sync": 6}
EXPECTED_CHANGE = {"missing": 1, "stale": 2, "orphaned": 1, "invalid": 2, "in_sync": 4}


def document(type_name: str, doc_id: str, n: int = 0) -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0)
    return {
        "id": doc_id,
        "object_type": type_name,
        "title": f"{doc_id} revision {n}",
        "customer_codes": ["acme", "globex"],
        "status": "approved" if type_name == "change" else "published",
        "created_at": (now - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "modified_at": (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "revision": n,
    }


def key_of(type_name: str, doc_id: str) -> str:
    return keys.s3_key(PREFIX[type_name], doc_id)


def plant(ready: Engine, aws: Aws, before: dict[str, Any] | None = None) -> dict[str, bytes]:
    """11 documents through the pipeline, then drift of every class behind its back (S3 writes
    whose events nobody applies, cache items deleted). Returns S3's bodies by key; `before`
    receives the cache items by S3 key as they were before the drift."""
    seed(
        ready,
        [document("change", i) for i in CHANGE_IDS]
        + [document("announcement", i) for i in ANNOUNCEMENT_IDS],
    )
    if before is not None:
        before.update({str(i["s3_key"]): i for i in aws.items().values()})
    table = ready.settings.table
    for pk in ("change#A-one", "announcement#b-2"):  # missing
        aws.dynamodb.delete_item(TableName=table, Key={"pk": {"S": pk}})
    for doc_id in ("Z-two", "m.four"):  # stale: changed in S3, the event dropped
        new = json.dumps(document("change", doc_id, 2)).encode()
        aws.s3.put_object(Bucket=BUCKET, Key=key_of("change", doc_id), Body=new)
    aws.s3.delete_object(Bucket=BUCKET, Key="changes/z-five.json")  # orphaned
    aws.s3.put_object(Bucket=BUCKET, Key=GARBAGE_KEY, Body=b"\x00{not json")  # invalid
    aws.s3.put_object(  # invalid: a fine body under a key that is no document's
        Bucket=BUCKET, Key=ODD_KEY, Body=json.dumps(document("change", "ODD")).encode()
    )
    return aws.objects()


def by_bytes(key: str) -> bytes:
    return key.encode()


def check_side(side: dict[str, Any] | None, etag: str, size: int) -> None:
    assert side is not None
    assert (side["etag"], side["size"]) == (etag, size)
    assert keys.parse_iso(side["last_modified"]) > datetime.now(UTC) - timedelta(minutes=10)


def test_report_json_has_exact_counts_and_both_sides(cli: Cli, ready: Engine, aws: Aws) -> None:
    cached: dict[str, Any] = {}
    objects = plant(ready, aws, cached)

    data = cli("reconcile").json()

    assert data["mode"] == "report"
    assert data["dry_run"] is False
    assert data["counts"] == EXPECTED
    assert data["repaired"] == dict.fromkeys(DRIFT, 0)
    assert data["remaining"] == 5  # invalid objects are reported, not repairable
    assert data["items_cap"] == 1000 and data["items_truncated"] is False
    assert data["shards"] == 8  # 4 per type by default
    assert data["compared"] == sum(EXPECTED.values())
    items = data["items"]
    assert {i["key"]: i["class"] for i in items} == PLANTED
    assert [i["key"] for i in items] == sorted(PLANTED, key=by_bytes)
    assert all(i["repaired"] is False for i in items)
    for item in items:
        key, s3, cache = item["key"], item["s3"], item["cache"]
        if item["class"] in ("missing", "invalid"):
            check_side(s3, md5(objects[key]), len(objects[key]))
            assert cache is None
        elif item["class"] == "stale":
            check_side(s3, md5(objects[key]), len(objects[key]))
            check_side(cache, cached[key]["etag"], int(cached[key]["size"]))
            assert s3["etag"] != cache["etag"]
        else:  # orphaned
            assert s3 is None
            check_side(cache, cached[key]["etag"], int(cached[key]["size"]))
    # A report changes nothing but the report itself.
    assert {k: v for k, v in aws.objects().items() if not k.startswith(REPORTS)} == objects


def test_items_are_capped_and_the_cap_is_stated(cli: Cli, ready: Engine, aws: Aws) -> None:
    plant(ready, aws)
    data = cli("reconcile", env={"DOCSYNC_RECONCILE_REPORT_CAP": "3"}).json()
    assert data["counts"] == EXPECTED  # the counts stay complete
    assert data["items_cap"] == 3
    assert data["items_truncated"] is True
    assert len(data["items"]) == 3
    assert all(PLANTED[i["key"]] == i["class"] for i in data["items"])


def test_fail_on_drift_then_repair_then_clean(cli: Cli, ready: Engine, aws: Aws) -> None:
    plant(ready, aws)

    drifted = cli("reconcile", "--fail-on-drift", expect=1).json()
    assert drifted["counts"] == EXPECTED

    repaired = cli("reconcile", "--repair").json()
    assert repaired["mode"] == "repair"
    assert repaired["counts"] == EXPECTED
    assert repaired["repaired"] == {"missing": 2, "stale": 2, "orphaned": 1, "invalid": 0}
    assert repaired["remaining"] == 0
    assert {i["key"] for i in repaired["items"] if i["repaired"]} == {
        k for k, c in PLANTED.items() if c != "invalid"
    }

    clean = cli("reconcile", "--fail-on-drift").json()  # exit 0: only invalid objects remain
    assert clean["counts"] == {"missing": 0, "stale": 0, "orphaned": 0, "invalid": 2, "in_sync": 10}
    assert clean["remaining"] == 0

    # The cache now says what S3 says, for every document key; the orphan is a tombstone;
    # the invalid objects were neither cached nor deleted.
    objects, items = aws.objects(), aws.items()
    for type_name, ids in (("change", CHANGE_IDS), ("announcement", ANNOUNCEMENT_IDS)):
        for doc_id in ids:
            item, key = items[f"{type_name}#{doc_id}"], key_of(type_name, doc_id)
            if key in objects:
                assert (item["state"], item["etag"]) == ("live", md5(objects[key])), key
            else:
                assert item["state"] == "deleted", key
    for key in ("changes/A-one.json", "changes/Z-two.json", "changes/z-five.json"):
        assert items[f"change#{key.removeprefix('changes/').removesuffix('.json')}"][
            "sync_source"
        ] == ("repair")
    assert "change#GARBAGE" not in items
    assert GARBAGE_KEY in objects and ODD_KEY in objects


def test_report_dir_and_the_copy_in_s3(cli: Cli, ready: Engine, aws: Aws, tmp_path: Path) -> None:
    plant(ready, aws)
    report_dir = tmp_path / "reports"

    run = cli("reconcile", "--report-dir", report_dir)
    data = run.json()

    files = sorted(p.name for p in report_dir.iterdir())
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".md"), files
    assert Path(files[0]).stem == Path(files[1]).stem
    assert data["report"]["dir"] == str(report_dir / files[0])
    on_disk = json.loads((report_dir / files[0]).read_text(encoding="utf-8"))
    assert on_disk == {k: v for k, v in data.items() if k != "report"}

    markdown = (report_dir / files[1]).read_text(encoding="utf-8")
    assert markdown.startswith("# Drift report: report")
    for name, count in EXPECTED.items():
        assert f"| {name} | {count} |" in markdown
    for key in PLANTED:
        assert f"`{key}`" in markdown

    s3_key = f"{REPORTS}{files[0]}"
    assert data["report"]["s3"] == f"s3://{BUCKET}/{s3_key}"
    objects = aws.objects()
    assert json.loads(objects[s3_key]) == on_disk
    assert objects[s3_key.replace(".json", ".md")].decode() == markdown
    # The reserved prefix is not drift: a second run still counts the same.
    assert cli("reconcile").json()["counts"] == EXPECTED


def test_history_lists_runs_newest_first(cli: Cli, ready: Engine, aws: Aws) -> None:
    assert cli("reconcile", "--history").json() == {"runs": []}
    plant(ready, aws)
    first = cli("reconcile").json()
    second = cli("reconcile", "--repair").json()
    third = cli("reconcile").json()

    runs = cli("reconcile", "--history").json()["runs"]

    assert [r["started_at"] for r in runs] == [
        third["started_at"],
        second["started_at"],
        first["started_at"],
    ]
    assert [r["mode"] for r in runs] == ["report", "repair", "report"]
    assert [r["counts"] for r in runs] == [third["counts"], second["counts"], first["counts"]]
    assert runs[2]["counts"] == EXPECTED and runs[2]["remaining"] == 5
    assert runs[1]["repaired"] == {"missing": 2, "stale": 2, "orphaned": 1, "invalid": 0}
    assert runs[0]["counts"]["in_sync"] == 10 and runs[0]["remaining"] == 0
    for run in runs:
        assert run["report"].startswith(REPORTS) and run["report"].endswith(".json")

    text = cli("reconcile", "--history", "--format", "text").stdout
    assert "recent reconcile runs" in text and "repair" in text


def test_repair_dry_run_changes_nothing(cli: Cli, ready: Engine, aws: Aws) -> None:
    plant(ready, aws)
    objects, items = aws.objects(), aws.items()

    run = cli("reconcile", "--repair", "--dry-run")
    data = run.json()

    assert data["dry_run"] is True and data["mode"] == "repair"
    assert data["counts"] == EXPECTED  # what a repair would find
    # Nothing was repaired; `would_repair` says what a repair would do.
    assert data["repaired"] == dict.fromkeys(DRIFT, 0)
    assert data["would_repair"] == {"missing": 2, "stale": 2, "orphaned": 1}
    assert data["remaining"] == 5
    assert not any(i["repaired"] for i in data["items"])
    # The bucket (no report written to S3 either) and the table are as they were, and a
    # report run afterwards finds the same drift.
    assert aws.objects() == objects
    assert aws.items() == items
    logs = run.logs()
    would = [line for line in logs if line.get("op") == "reconcile.repair"]
    assert would and all(line.get("dry_run") is True for line in would), would
    assert sorted(line["id"] for line in would if line.get("drift") != "invalid") == sorted(
        ["A-one", "b-2", "Z-two", "m.four", "z-five"]
    )
    puts = [line for line in logs if line.get("op") == "s3.PutObject"]
    assert puts and all(line.get("dry_run") is True for line in puts)
    assert cli("reconcile").json()["counts"] == EXPECTED


def test_fail_on_drift_in_a_dry_run_repair(cli: Cli, ready: Engine, aws: Aws) -> None:
    """A dry run repairs nothing, so the drift remains and `--fail-on-drift` must say so:
    a CI gate running `reconcile --repair --dry-run --fail-on-drift` must not pass."""
    plant(ready, aws)
    run = cli("reconcile", "--repair", "--dry-run", "--fail-on-drift", expect=None)
    data = run.json()
    assert data["dry_run"] is True
    assert data["remaining"] == 5, "the drift is all still there after a dry run"
    assert run.returncode == 1, str(run)


def test_type_limits_the_run(cli: Cli, ready: Engine, aws: Aws) -> None:
    plant(ready, aws)

    data = cli("reconcile", "--type", "change").json()

    assert data["counts"] == EXPECTED_CHANGE
    assert data["shards"] == 4
    assert data["compared"] == sum(EXPECTED_CHANGE.values())
    assert {i["key"] for i in data["items"]} == {k for k in PLANTED if k.startswith("changes/")}

    repaired = cli("reconcile", "--type", "announcement", "--repair").json()
    assert repaired["counts"] == {
        "missing": 1,
        "stale": 0,
        "orphaned": 0,
        "invalid": 0,
        "in_sync": 2,
    }
    assert repaired["repaired"]["missing"] == 1
    # The changes were left alone.
    assert cli("reconcile", "--type", "change").json()["counts"] == EXPECTED_CHANGE


def test_text_summary(cli: Cli, ready: Engine, aws: Aws) -> None:
    plant(ready, aws)
    out = cli("reconcile", "--format", "text").stdout
    assert "reconcile report" in out
    assert "missing 2  stale 2  orphaned 1  invalid 2  in_sync 6" in out
    assert "(+2 invalid objects: reported, never cached)" in out
    for key, cls in PLANTED.items():
        assert f"{cls:<8} {key}" in out


def test_a_changed_month_shard_count_is_refused_with_exit_2(cli: Cli, ready: Engine) -> None:
    """Written with month_shards = 1, reconciled with 4: the entries sit in buckets no query
    of 4 reads, so the run refuses and says where to look instead of reporting."""
    seed(ready, [document("change", "A-one")])
    run = cli("reconcile", env={"DOCSYNC_MONTH_SHARDS": "4"}, expect=2)
    assert "month_shards = 4" in run.stderr and "docs/scaling.md" in run.stderr
    assert cli("reconcile").json()["counts"]["in_sync"] == 1

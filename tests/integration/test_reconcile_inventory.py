"""Invariant 6 with an S3 Inventory report as the S3 side, over HTTP: a report written to a
second bucket as AWS writes it (manifest, checksum, gzipped CSV files with rows shuffled across
them) gives the same counts as a listing for planted drift of every class, and the report's
age is absorbed: what changed since it was taken is verified against S3, never reported."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from click.testing import CliRunner

from engine import keys
from engine.app import Engine
from engine.documents import parse_document
from engine.logs import configure_logging
from reconciler import reports
from reconciler.inventory import InventorySource
from reconciler.run import Reconciler
from tests.integration.test_listener_convergence import body
from tests.integration.test_reconcile import ODD_KEYS, cache_equals_s3, load

DEST = "docsync-inventories"
MANIFEST = "docsync-documents/all/2026-11-20T10-00Z/manifest.json"
SCHEMA = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag"


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def take_inventory(engine: Engine, files: int = 3, seed: int = 1) -> str:
    """What S3 Inventory would write now: every object of the bucket, plus rows it also
    writes (old versions, delete markers, if versions are included), shuffled across files."""
    s3, bucket = engine.clients.s3, engine.settings.bucket
    s3.create_bucket(Bucket=DEST)
    rows = []
    for info in engine.objects.list(""):
        lm = info.last_modified
        stamp = lm.strftime("%Y-%m-%dT%H:%M:%S.") + f"{lm.microsecond // 1000:03d}Z"
        key = quote_plus(info.key, safe="/")
        rows.append([bucket, key, "v2", "true", "false", str(info.size), stamp, info.etag])
        rows.append([bucket, key, "v1", "false", "false", "1", stamp, "0" * 32])
    stamp = "2026-11-20T10:00:00.000Z"
    rows.append([bucket, "changes/CHG-deleted.json", "v9", "true", "true", "", stamp, ""])
    rows.append(["another-bucket", "changes/CHG-x.json", "v1", "true", "false", "2", stamp, "e"])
    random.Random(seed).shuffle(rows)
    entries = []
    for n in range(files):
        text = io.StringIO()
        csv.writer(text, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows[n::files])
        data = gzip.compress(text.getvalue().encode())
        key = f"docsync-documents/all/data/{n:04d}.csv.gz"
        s3.put_object(Bucket=DEST, Key=key, Body=data)
        entries.append({"key": key, "size": len(data), "MD5checksum": md5(data)})
    manifest = json.dumps(
        {
            "sourceBucket": bucket,
            "destinationBucket": f"arn:aws:s3:::{DEST}",
            "version": "2016-11-30",
            "creationTimestamp": str(int(time.time() * 1000)),
            "fileFormat": "CSV",
            "fileSchema": SCHEMA,
            "files": entries,
        }
    ).encode()
    s3.put_object(Bucket=DEST, Key=MANIFEST, Body=manifest)
    checksum = MANIFEST.replace("manifest.json", "manifest.checksum")
    s3.put_object(Bucket=DEST, Key=checksum, Body=md5(manifest).encode())
    return f"s3://{DEST}/{MANIFEST}"


def source(engine: Engine, uri: str, tmp_dir: Path | None = None) -> InventorySource:
    return InventorySource.open(
        engine.clients.s3,
        uri,
        engine.settings.bucket,
        run_size=5,
        fan_in=3,
        tmp_dir=str(tmp_dir) if tmp_dir else None,
    )


def verdicts(report: dict[str, Any]) -> list[tuple[str, str]]:
    return [(i["key"], i["class"]) for i in report["items"]]


def test_planted_drift_gives_the_same_report_as_a_listing_then_repair(
    engine: Engine, tmp_path: Path
) -> None:
    docs = load(engine, 30)
    ddb, s3, bucket = engine.clients.dynamodb, engine.clients.s3, engine.settings.bucket
    for d in docs[:3]:  # missing
        ddb.delete_item(TableName=engine.settings.table, Key={"pk": {"S": f"change#{d.id}"}})
    for d in docs[3:5]:  # orphaned
        s3.delete_object(Bucket=bucket, Key=f"changes/{d.id}.json")
    for d in docs[5:9]:  # stale
        engine.objects.put(f"changes/{d.id}.json", body(d.id, 1000))
    engine.objects.put("changes/CHG-garbage.json", b"garbage{")  # invalid
    for key in ODD_KEYS:  # invalid: not document keys (space, `+`, unicode)
        engine.objects.put(key, body("CHG-000", 1))
    uri = take_inventory(engine)

    listed = Reconciler(engine).run("report").as_dict()
    inventory = source(engine, uri, tmp_path)
    report = Reconciler(engine).run("report", inventory=inventory).as_dict()
    assert (
        report["counts"]
        == listed["counts"]
        == {
            "missing": 3,
            "stale": 4,
            "orphaned": 2,
            "invalid": 4,
            "in_sync": 21,
        }
    )
    assert verdicts(report) == verdicts(listed)
    assert report["remaining"] == listed["remaining"] == 9
    assert list(tmp_path.iterdir()) == []  # the sorted runs are gone with the run
    assert listed["s3_source"] == "list" and "inventory_created_at" not in listed
    assert report["s3_source"] == f"inventory:{uri}"
    created = keys.parse_iso(report["inventory_created_at"])  # the manifest's, taken just now
    assert abs((datetime.now(UTC) - created).total_seconds()) < 600

    repair = Reconciler(engine).run("repair", inventory=inventory).as_dict()
    assert repair["repaired"] == {"missing": 3, "stale": 4, "orphaned": 2, "invalid": 0}
    assert repair["remaining"] == 0
    cache_equals_s3(engine)
    # the same (now older) report again: nothing left to repair, the invalid still reported
    again = Reconciler(engine).run("repair", inventory=inventory).as_dict()
    assert again["repaired"] == {"missing": 0, "stale": 0, "orphaned": 0, "invalid": 0}
    assert again["counts"]["invalid"] == 4 and again["remaining"] == 0


def test_changes_since_the_report_are_verified_not_reported(engine: Engine) -> None:
    load(engine, 6)
    engine.objects.put("changes/CHG-100.json", body("CHG-100", 1))  # not cached (no listener)
    engine.objects.put(ODD_KEYS[0], body("CHG-000", 1))
    uri = take_inventory(engine)
    # After the report was taken:
    engine.pipeline.put(parse_document(body("CHG-200", 1)))  # cached, in S3, not in the report
    engine.pipeline.put(parse_document(body("CHG-001", 99)))  # cached and S3 both newer
    engine.pipeline.delete("change", "CHG-002")  # gone from S3, tombstoned
    s3, bucket = engine.clients.s3, engine.settings.bucket
    s3.delete_object(Bucket=bucket, Key="changes/CHG-100.json")  # gone, never cached
    s3.delete_object(Bucket=bucket, Key=ODD_KEYS[0])  # an invalid object, gone

    before = sorted(engine.cache.scan_all(), key=lambda i: str(i["pk"]))
    report = Reconciler(engine).run("repair", inventory=source(engine, uri)).as_dict()
    assert report["counts"] == {
        "missing": 0,
        "stale": 0,
        "orphaned": 0,
        "invalid": 0,
        "in_sync": 6,  # CHG-000, 001, 003, 004, 005 and 200
    }
    assert report["skipped"] == {"vanished": 3}  # CHG-002, CHG-100 and the invalid object
    assert report["repaired"] == {"missing": 0, "stale": 0, "orphaned": 0, "invalid": 0}
    assert report["items"] == []
    assert sorted(engine.cache.scan_all(), key=lambda i: str(i["pk"])) == before
    listed = Reconciler(engine).run("report").as_dict()
    assert listed["counts"] == report["counts"] and listed["skipped"] == {}


@pytest.fixture
def run_cli(engine: Engine) -> Any:
    from engine.cli.main import cli

    def invoke(*args: str) -> Any:
        base = ["--format", "json", "--endpoint-url", str(engine.settings.endpoint_url)]
        try:
            return CliRunner().invoke(cli, ["reconcile", *args, *base])
        finally:
            configure_logging("json", "WARNING")  # the command set up logging on its stderr

    return invoke


def test_cli_reconcile_with_an_inventory(engine: Engine, run_cli: Any) -> None:
    load(engine, 3)
    uri = take_inventory(engine, files=2)
    ok = run_cli("--inventory", uri)
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.stdout)
    assert data["s3_source"] == f"inventory:{uri}" and data["counts"]["in_sync"] == 3
    for render in (reports.to_text, reports.to_markdown):  # a person reading it is told too
        assert f"S3 side: inventory:{uri}, taken {data['inventory_created_at']}" in render(data)
    missing = f"s3://{DEST}/nowhere/manifest.json"
    for args, message in [
        (("--inventory", missing), f"inventory manifest {missing} does not exist"),
        (("--inventory", "changes/manifest.json"), "--inventory wants the manifest's S3 URI"),
        (("--inventory", uri, "--enqueue"), "--inventory cannot be combined with --enqueue"),
    ]:
        bad = run_cli(*args)
        assert bad.exit_code == 2, bad.output
        assert message in json.loads(bad.stdout)["error"]

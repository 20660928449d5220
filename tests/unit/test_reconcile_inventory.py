"""reconciler/inventory.py and reconciler/extsort.py: the manifest read as AWS writes it (schema
order, optional columns, formats, checksums), keys decoded, rows filtered to the documents
bucket, current versions and the shards run, and the external sort giving each shard its rows
in UTF-8 byte order whatever the run size — checked against `sorted` with hypothesis."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from moto import mock_aws

from engine.cli.output import exit_code
from engine.exceptions import DocsyncError
from engine.store.objects import ObjectInfo
from reconciler.extsort import Router, ShardedRuns
from reconciler.inventory import (
    DataFile,
    InventoryError,
    InventorySource,
    decode_key,
    parse_manifest,
    parse_rows,
    parse_uri,
    read_data_file,
)
from reconciler.shards import Shard, plan

from ._hyp import FAST, key_text

PREFIXES = {"change": "changes/", "announcement": "announcements/"}
BUCKET = "docs"
SCHEMA = "Bucket, Key, Size, LastModifiedDate, ETag, StorageClass"
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def manifest(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "sourceBucket": BUCKET,
        "destinationBucket": "arn:aws:s3:::inventories",
        "version": "2016-11-30",
        "creationTimestamp": str(int(T0.timestamp() * 1000)),
        "fileFormat": "CSV",
        "fileSchema": SCHEMA,
        "files": [{"key": "docs/inv/data/a.csv.gz", "size": 10, "MD5checksum": "0" * 32}],
    }
    data.update(overrides)
    return data


def raw(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


def csv_gz(rows: list[list[str]]) -> bytes:
    text = io.StringIO()
    csv.writer(text, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    return gzip.compress(text.getvalue().encode())


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def encode(key: str) -> str:
    return quote_plus(key, safe="/")


# -- manifest ---------------------------------------------------------------------------------


def test_manifest_fields_are_read_and_the_destination_arn_becomes_a_bucket() -> None:
    m = parse_manifest(raw(manifest()), "s3://inventories/m.json")
    assert m.source_bucket == BUCKET and m.destination_bucket == "inventories"
    assert m.columns == ("Bucket", "Key", "Size", "LastModifiedDate", "ETag", "StorageClass")
    assert m.created_at == T0
    assert m.files == (DataFile("docs/inv/data/a.csv.gz", 10, "0" * 32),)


def test_fields_are_found_by_the_schema_order_not_a_fixed_one() -> None:
    schema = "ETag, IsLatest, Key, LastModifiedDate, Bucket, Size"
    m = parse_manifest(raw(manifest(fileSchema=schema)), "m")
    rows = list(
        parse_rows(
            [["abc", "true", "changes/A.json", "2026-11-20T10:00:00.000Z", BUCKET, "42"]],
            m.columns,
            BUCKET,
            "f",
        )
    )
    assert rows == [ObjectInfo("changes/A.json", "abc", 42, T0)]


def test_optional_columns_may_be_absent() -> None:
    m = parse_manifest(raw(manifest(fileSchema="Bucket,Key,LastModifiedDate,ETag")), "m")
    assert m.columns == ("Bucket", "Key", "LastModifiedDate", "ETag")
    rows = list(
        parse_rows([[BUCKET, "changes/A.json", "2026-11-20T10:00:00Z", "e"]], m.columns, BUCKET, "")
    )
    assert rows == [ObjectInfo("changes/A.json", "e", 0, T0)]  # no Size column: 0


@pytest.mark.parametrize("column", ["ETag", "LastModifiedDate", "Key", "Bucket"])
def test_a_report_without_a_column_the_reconciler_needs_is_refused_naming_it(column: str) -> None:
    schema = ", ".join(c for c in SCHEMA.split(", ") if c != column)
    with pytest.raises(InventoryError, match=column) as info:
        parse_manifest(raw(manifest(fileSchema=schema)), "s3://inventories/m.json")
    assert exit_code(info.value) == 2


@pytest.mark.parametrize("fmt", ["ORC", "Parquet"])
def test_other_formats_are_refused_naming_the_format(fmt: str) -> None:
    with pytest.raises(InventoryError, match=f"format {fmt} is not supported"):
        parse_manifest(raw(manifest(fileFormat=fmt)), "m")


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", raw({"fileFormat": "CSV"}), raw(manifest(creationTimestamp="soon"))],
)
def test_a_malformed_manifest_is_a_clear_error(body: bytes) -> None:
    with pytest.raises(InventoryError, match=r"s3://b/m\.json: not a valid inventory manifest"):
        parse_manifest(body, "s3://b/m.json")


@pytest.mark.parametrize(
    "uri", ["", "b/m.json", "s3://", "s3://bucket", "s3://bucket/", "http://b/m.json"]
)
def test_a_uri_that_is_not_an_s3_object_is_refused(uri: str) -> None:
    with pytest.raises(InventoryError, match=r"^inventory wants"):
        parse_uri(uri)


def test_uri_parts() -> None:
    assert parse_uri("s3://inv/docs/cfg/2026-11-20T10-00Z/manifest.json") == (
        "inv",
        "docs/cfg/2026-11-20T10-00Z/manifest.json",
    )


# -- keys and rows ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoded", "key"),
    [
        ("changes/with+space%2Bplus.json", "changes/with space+plus.json"),
        ("changes/with%20space.json", "changes/with space.json"),
        ("changes/caf%C3%A9.json", "changes/café.json"),
        ("changes/a%2Fb.json", "changes/a/b.json"),
        ("changes/CHG-1.json", "changes/CHG-1.json"),
    ],
)
def test_keys_are_url_decoded(encoded: str, key: str) -> None:
    assert decode_key(encoded) == key


@given(st.text(st.characters(exclude_categories=["Cs"]), max_size=30))
@FAST
def test_decoding_inverts_the_form_encoding(key: str) -> None:
    assert decode_key(encode(key)) == key


def test_rows_of_other_buckets_old_versions_and_delete_markers_are_dropped() -> None:
    columns: tuple[str, ...] = ("Bucket", "Key", "VersionId", "IsLatest", "IsDeleteMarker", "Size")
    columns += ("LastModifiedDate", "ETag")
    lm = "2026-11-20T10:00:00.000Z"
    records = [
        [BUCKET, "changes/keep.json", "v2", "true", "false", "5", lm, "e2"],
        [BUCKET, "changes/keep.json", "v1", "false", "false", "4", lm, "e1"],
        [BUCKET, "changes/gone.json", "v3", "true", "true", "", lm, ""],
        ["other", "changes/other.json", "v1", "true", "false", "5", lm, "e"],
    ]
    assert list(parse_rows(records, columns, BUCKET, "f")) == [
        ObjectInfo("changes/keep.json", "e2", 5, T0)
    ]


@pytest.mark.parametrize(
    ("record", "match"),
    [
        ([BUCKET, "k", "1", "2026-11-20T10:00:00Z"], "row 1 has 4 fields, the schema 6"),
        ([BUCKET, "k", "x", "2026-11-20T10:00:00Z", "e", "S"], "f: row 1"),
        ([BUCKET, "k", "1", "yesterday", "e", "S"], "f: row 1"),
    ],
)
def test_a_malformed_row_names_the_file_and_row(record: list[str], match: str) -> None:
    columns = tuple(c.strip() for c in SCHEMA.split(","))
    with pytest.raises(InventoryError, match=match):
        list(parse_rows([record], columns, BUCKET, "f"))


def data_file(rows: list[list[str]], key: str = "data/a.csv.gz") -> tuple[bytes, DataFile]:
    body = csv_gz(rows)
    return body, DataFile(key, len(body), md5(body))


COLUMNS = tuple(c.strip() for c in SCHEMA.split(","))


def row(key: str, etag: str = "e", bucket: str = BUCKET) -> list[str]:
    return [bucket, encode(key), "7", "2026-11-20T10:00:00.000Z", etag, "STANDARD"]


def test_a_data_file_is_streamed_and_decoded() -> None:
    keys = ["changes/with space.json", "changes/a+b.json", "changes/café.json"]
    body, file = data_file([row(k) for k in keys] + [row("changes/x.json", bucket="other")])
    rows = list(read_data_file(io.BytesIO(body), file, COLUMNS, BUCKET))
    assert [r.key for r in rows] == keys
    assert {r.etag for r in rows} == {"e"} and {r.size for r in rows} == {7}


def test_a_data_file_whose_md5_differs_is_refused_naming_it() -> None:
    body, file = data_file([row("changes/A.json")])
    wrong = DataFile(file.key, file.size, "f" * 32)
    with pytest.raises(InventoryError, match=r"checksum mismatch .*data/a\.csv\.gz"):
        list(read_data_file(io.BytesIO(body), wrong, COLUMNS, BUCKET))


def test_a_data_file_that_is_not_gzip_is_refused_naming_it() -> None:
    body = b"not gzip at all"
    file = DataFile("data/b.csv.gz", len(body), md5(body))
    with pytest.raises(InventoryError, match=r"data/b\.csv\.gz is unreadable"):
        list(read_data_file(io.BytesIO(body), file, COLUMNS, BUCKET))


# -- the manifest in S3 (moto in-process: unit tests only) ------------------------------------


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="inventories")
        yield client


MANIFEST_KEY = "docs/cfg/2026-11-20T10-00Z/manifest.json"
URI = f"s3://inventories/{MANIFEST_KEY}"


def put_report(s3: Any, rows_by_file: list[list[list[str]]], checksum: str | None = "ok") -> None:
    files = []
    for n, rows in enumerate(rows_by_file):
        body = csv_gz(rows)
        key = f"docs/cfg/data/{n}.csv.gz"
        s3.put_object(Bucket="inventories", Key=key, Body=body)
        files.append({"key": key, "size": len(body), "MD5checksum": md5(body)})
    body = raw(manifest(files=files))
    s3.put_object(Bucket="inventories", Key=MANIFEST_KEY, Body=body)
    if checksum is not None:
        value = md5(body) if checksum == "ok" else checksum
        s3.put_object(
            Bucket="inventories",
            Key=MANIFEST_KEY.replace("manifest.json", "manifest.checksum"),
            Body=value.encode() + b"\n",
        )


def test_open_reads_a_report_and_sorts_it_into_shards(s3: Any) -> None:
    put_report(s3, [[row("changes/b.json"), row("announcements/x.json")], [row("changes/a.json")]])
    source = InventorySource.open(s3, URI, BUCKET)
    assert source.created_at == T0 and source.label == f"inventory:{URI}"
    shards = plan(PREFIXES, 1)
    with source.sort(shards) as runs:
        directory = runs.directory
        assert [r.key for r in runs.rows(shards[0])] == ["changes/a.json", "changes/b.json"]
        assert [r.key for r in runs.rows(shards[1])] == ["announcements/x.json"]
    assert not directory.exists()


def test_a_missing_checksum_file_is_fine(s3: Any) -> None:
    put_report(s3, [[row("changes/a.json")]], checksum=None)
    assert InventorySource.open(s3, URI, BUCKET).manifest.files


def test_a_manifest_checksum_mismatch_is_refused(s3: Any) -> None:
    put_report(s3, [[row("changes/a.json")]], checksum="0" * 32)
    with pytest.raises(InventoryError, match="checksum mismatch for s3://inventories/"):
        InventorySource.open(s3, URI, BUCKET)


def test_a_missing_manifest_is_refused_naming_it(s3: Any) -> None:
    with pytest.raises(InventoryError, match=f"inventory manifest {URI} does not exist"):
        InventorySource.open(s3, URI, BUCKET)
    with pytest.raises(InventoryError, match="does not exist"):
        InventorySource.open(s3, "s3://no-such-bucket/m.json", BUCKET)


def test_an_inventory_of_another_bucket_is_refused(s3: Any) -> None:
    put_report(s3, [[row("changes/a.json")]])
    with pytest.raises(InventoryError, match=r"inventory of bucket docs, not of .* elsewhere"):
        InventorySource.open(s3, URI, "elsewhere")


def test_a_data_file_mismatch_stops_the_sort_and_leaves_no_files(s3: Any, tmp_path: Path) -> None:
    put_report(s3, [[row("changes/a.json")], [row("changes/b.json")]])
    s3.put_object(Bucket="inventories", Key="docs/cfg/data/1.csv.gz", Body=csv_gz([]))
    source = InventorySource.open(s3, URI, BUCKET, tmp_dir=str(tmp_path))
    with pytest.raises(DocsyncError, match=r"checksum mismatch .*docs/cfg/data/1\.csv\.gz"):
        source.sort(plan(PREFIXES, 2))
    assert list(tmp_path.iterdir()) == []


# -- routing and the external sort ------------------------------------------------------------


def test_rows_outside_the_shards_run_are_dropped() -> None:
    shards = plan(PREFIXES, 4)
    some = [s for s in shards if s.prefix == "changes/"][1:3]
    keys = ["changes/0.json", "changes/M.json", "changes/a.json", "changes/z.json"]
    keys += ["_docsync/reports/r.json", "announcements/M.json", "other/M.json", "changes"]
    with ShardedRuns(some, run_size=2) as runs:
        for key in keys:
            runs.add(ObjectInfo(key, "e", 1, T0))
        runs.finish()
        kept = {s.name: [r.key for r in runs.rows(s)] for s in some}
        assert runs.added == len(keys)
        assert runs.kept == sum(len(v) for v in kept.values())
    for shard in some:
        assert kept[shard.name] == sorted((k for k in keys if shard.contains(k)), key=str.encode)
    assert all("changes/0.json" not in v for v in kept.values())


def test_a_key_listed_twice_comes_out_once() -> None:
    shards = plan(PREFIXES, 1)
    with ShardedRuns(shards, run_size=1) as runs:
        for _ in range(3):
            runs.add(ObjectInfo("changes/a.json", "e", 1, T0))
        runs.finish()
        assert [r.key for r in runs.rows(shards[0])] == ["changes/a.json"]


def test_run_size_bounds_what_is_held_and_fan_in_what_is_merged() -> None:
    shards = plan(PREFIXES, 1)
    rows = [
        ObjectInfo(f"changes/{n:04d}.json", "e", n, T0 + timedelta(microseconds=n))
        for n in range(50)
    ]
    random.Random(3).shuffle(rows)
    runs = ShardedRuns(shards, run_size=4, fan_in=3)
    for r in rows:
        runs.add(r)
        spilled = sum(len(p.read_text().splitlines()) for p in runs.directory.iterdir())
        assert runs.added - spilled < 4  # what is still held in memory
    runs.finish()
    assert len(list(runs.directory.iterdir())) <= 3
    assert list(runs.rows(shards[0])) == sorted(rows, key=lambda r: r.key)  # times survive
    runs.close()
    assert not runs.directory.exists()


rests = key_text(extra="\n\"'\\,", max_size=8)
key_lists = st.lists(
    st.tuples(st.sampled_from([*PREFIXES.values(), "_docsync/", ""]), rests).map("".join),
    unique=True,
    max_size=60,
)


@given(
    key_lists,
    st.integers(1, 65),
    st.integers(1, 5),
    st.integers(2, 4),
    st.randoms(use_true_random=False),
)
@example(
    ["changes/\U0010ffff", "changes/\uffff", "changes/é", "changes/z"], 2, 1, 2, random.Random(0)
)
@FAST
def test_external_sort_gives_each_shard_exactly_its_keys_in_byte_order(
    keys: list[str], per_type: int, run_size: int, fan_in: int, rng: random.Random
) -> None:
    shards = plan(PREFIXES, per_type)
    chosen = [s for s in shards if rng.random() < 0.7]
    rng.shuffle(keys)
    with ShardedRuns(chosen, run_size=run_size, fan_in=fan_in) as runs:
        for key in keys:
            runs.add(ObjectInfo(key, "e", len(key), T0))
        runs.finish()
        for shard in chosen:
            expected = sorted((k for k in keys if shard.contains(k)), key=lambda k: k.encode())
            assert [r.key for r in runs.rows(shard)] == expected, shard.name


@given(key_lists, st.integers(1, 65))
@FAST
def test_router_agrees_with_contains(keys: list[str], per_type: int) -> None:
    shards = plan(PREFIXES, per_type)
    router = Router(shards)
    for key in keys:
        assert router.shards_of(key) == [s for s in shards if s.contains(key)]


def test_shard_subsets_with_gaps_route_nothing_into_the_gap() -> None:
    shards = [s for s in plan(PREFIXES, 8) if s.prefix == "changes/"]
    router = Router([shards[0], shards[5]])
    for shard in shards[1:5]:
        assert router.shards_of(f"changes/{shard.chars[0]}x.json") == []
    assert router.shards_of(f"changes/{shards[5].chars[-1]}.json") == [shards[5]]
    assert isinstance(shards[0], Shard)

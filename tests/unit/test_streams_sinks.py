"""engine/streams/sinks.py and the names the drivers give their emissions: the same batch
always gets the same name (a retry overwrites it), any other start gets another; the three
sinks store, replace, find and read emissions alike."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from engine.store.objects import ObjectStore
from engine.streams.exceptions import MalformedRecordError
from engine.streams.lambda_handler import batch_name
from engine.streams.records import from_stream
from engine.streams.sinks import (
    ANALYTICS,
    DEAD_LETTER,
    FileRowSink,
    MemorySink,
    RowSink,
    S3RowSink,
    emission_name,
    fresh_name,
)
from tests.unit.test_streams_core import ARN, scripted_batch

AT = datetime(2026, 11, 23, 12, 0, 5, tzinfo=UTC)


def name_of(records: list[dict[str, Any]]) -> str | None:
    changes = []
    for raw in records:
        try:
            changes.append(from_stream(raw))
        except MalformedRecordError:
            continue
    return batch_name(records, changes, lambda r: str(r["dynamodb"]["SequenceNumber"]))


def test_emission_name_is_a_function_of_time_producer_and_identity() -> None:
    name = emission_name(AT, "lambda", "arn", "e1", "100")
    assert name == emission_name(AT, "lambda", "arn", "e1", "100")
    assert name.startswith("2026-11-23/12/20261123T120005000000Z-lambda-")
    others = {
        emission_name(AT, "lambda", "arn", "e1", "101"),
        emission_name(AT, "lambda", "arn2", "e1", "100"),
        emission_name(AT, "kcl", "arn", "e1", "100"),
        emission_name(AT + timedelta(hours=1), "lambda", "arn", "e1", "100"),
        emission_name(AT, "lambda", "arn", "e1100"),  # parts cannot run into each other
    }
    assert name not in others and len(others) == 5
    assert fresh_name("lambda") != fresh_name("lambda")


def test_the_same_batch_always_gets_the_same_name() -> None:
    records = scripted_batch()
    assert name_of(records) == name_of(copy.deepcopy(records)) is not None


def test_a_batch_starting_anywhere_else_gets_another_name() -> None:
    records = scripted_batch()
    names = [name_of(records[k:]) for k in range(len(records))]
    assert len(set(names)) == len(records)  # the retry after a partial failure starts later
    elsewhere = copy.deepcopy(records)
    for r in elsewhere:
        r["eventSourceARN"] = ARN.replace("docsync-cache", "other-table")
    assert name_of(elsewhere) not in names
    other_shard = copy.deepcopy(records)  # same sequence number, another record
    other_shard[0]["eventID"] = "e-from-another-shard"
    assert name_of(other_shard) not in names


def test_a_bisected_retry_replaces_its_parent() -> None:
    """Deliberately named by the start only: after a function error Lambda may retry the
    batch cut in halves; the first half must overwrite the whole batch's object (its second
    half starts elsewhere, under a name of its own), or the second half is counted twice."""
    records = scripted_batch()
    assert name_of(records[:7]) == name_of(records)
    assert name_of(records[7:]) != name_of(records)


def test_nothing_decoded_means_no_name() -> None:
    broken = copy.deepcopy(scripted_batch()[:2])
    for r in broken:
        r["eventName"] = "UPSERT"
    assert name_of(broken) is None
    assert batch_name([], [], str) is None


def test_the_first_record_that_decodes_gives_the_hour() -> None:
    records = scripted_batch()
    head = copy.deepcopy(records[0])
    head["eventName"] = "UPSERT"
    head["dynamodb"]["ApproximateCreationDateTime"] = int((AT - timedelta(days=3)).timestamp())
    name = name_of([head, *records[1:]])
    assert name is not None and name.startswith("2026-11-23/12/")  # records[1] is at 12:00:05
    assert name != name_of(records[1:])  # yet named by the batch's first record


@pytest.fixture(params=["memory", "file", "s3"])
def sink(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RowSink]:
    if request.param == "memory":
        yield MemorySink()
    elif request.param == "file":
        yield FileRowSink(tmp_path / "rows", "test")
    else:
        with mock_aws():
            s3 = boto3.client("s3", region_name="us-east-1")
            s3.create_bucket(Bucket="docsync-rows")
            yield S3RowSink(ObjectStore(s3, "docsync-rows"), "_docsync/", "test")


def test_sinks_store_replace_find_and_read_alike(sink: RowSink) -> None:
    now = datetime.now(UTC)
    first, second = emission_name(now, "t", "a"), emission_name(now, "t", "b")
    assert not sink.exists(ANALYTICS, first)
    sink.put(ANALYTICS, first, [{"n": 1}, {"n": 2}])
    sink.put(ANALYTICS, first, [{"n": 1}, {"n": 2}])  # a retry: replaces, adds nothing
    sink.put(ANALYTICS, second, [{"n": 3}])
    sink.put(DEAD_LETTER, first, [{"reason": "x"}])
    assert sink.exists(ANALYTICS, first) and sink.exists(ANALYTICS, second)
    since = now - timedelta(minutes=1)
    assert sorted(r["n"] for r in sink.read(ANALYTICS, since)) == [1, 2, 3]
    sink.put(ANALYTICS, first, [])  # emptied, still there
    assert sink.exists(ANALYTICS, first)
    assert [r["n"] for r in sink.read(ANALYTICS, since)] == [3]
    assert [r["reason"] for r in sink.read(DEAD_LETTER, since)] == ["x"]


def test_an_emission_named_by_an_earlier_record_time_is_read(sink: RowSink) -> None:
    """Lambda and KCL name emissions by their first record, which may be an hour back."""
    now = datetime.now(UTC)
    sink.put(ANALYTICS, emission_name(now - timedelta(minutes=59), "t", "x"), [{"n": 1}])
    assert [r["n"] for r in sink.read(ANALYTICS, now)] == [1]


@pytest.mark.parametrize("name", ["../../etc/passwd", "2026-11-23/12/../x", "x", ""])
def test_names_that_are_not_emission_names_are_refused(sink: RowSink, name: str) -> None:
    with pytest.raises(ValueError, match="not an emission name"):
        sink.put(ANALYTICS, name, [])


def test_a_file_is_never_seen_half_written(tmp_path: Path) -> None:
    sink = FileRowSink(tmp_path, "test")
    name = emission_name(datetime.now(UTC), "t", "a")
    sink.put(ANALYTICS, name, [{"n": 1}])
    files = [p.name for p in tmp_path.rglob("*") if p.is_file()]
    assert files == [f"{name.rsplit('/', 1)[1]}.jsonl"]  # no temporary left behind


def test_rows_of_earlier_versions_are_still_read(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    (tmp_path / f"{ANALYTICS}-{now:%Y-%m-%d}.jsonl").write_text('{"n": 7}\n')
    assert [r["n"] for r in FileRowSink(tmp_path, "t").read(ANALYTICS, now)] == [7]

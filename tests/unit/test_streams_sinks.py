"""engine/streams/sinks.py and the names the drivers give their emissions: the same batch
always gets the same identity (a retry supersedes it), any other start gets another; the
three sinks store, replace, supersede, find and read emissions alike."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import time_machine
from moto import mock_aws

from engine.lambdas.stream import batch_name
from engine.store.objects import ObjectStore
from engine.streams.exceptions import MalformedRecordError
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
    identity_of,
    newest_per_identity,
)
from tests.unit.test_streams_core import ARN, scripted_batch

AT = datetime(2026, 11, 23, 12, 0, 5, tzinfo=UTC)  # a pure function of it: never rots


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


def identity(records: list[dict[str, Any]]) -> str | None:
    name = name_of(records)
    return None if name is None else identity_of(name)[0]


def test_the_same_batch_always_gets_the_same_identity() -> None:
    records = scripted_batch()
    assert identity(records) == identity(copy.deepcopy(records)) is not None


def test_a_batch_starting_anywhere_else_gets_another_identity() -> None:
    records = scripted_batch()
    names = [identity(records[k:]) for k in range(len(records))]
    assert len(set(names)) == len(records)  # the retry after a partial failure starts later
    elsewhere = copy.deepcopy(records)
    for r in elsewhere:
        r["eventSourceARN"] = ARN.replace("docsync-cache", "other-table")
    assert identity(elsewhere) not in names
    other_shard = copy.deepcopy(records)  # same sequence number, another record
    other_shard[0]["eventID"] = "e-from-another-shard"
    assert identity(other_shard) not in names


def test_a_bisected_retry_supersedes_its_parent() -> None:
    """Deliberately named by the start only: after a function error Lambda may retry the
    batch cut in halves; the first half must supersede the whole batch's object (its second
    half starts elsewhere, under an identity of its own), or the second half counts twice."""
    records = scripted_batch()
    assert identity(records[:7]) == identity(records)
    assert identity(records[7:]) != identity(records)


def test_nothing_decoded_means_no_name() -> None:
    broken = copy.deepcopy(scripted_batch()[:2])
    for r in broken:
        r["eventName"] = "UPSERT"
    assert name_of(broken) is None
    assert batch_name([], [], str) is None


def test_a_batch_is_filed_under_the_hour_it_is_stored_not_its_records() -> None:
    """A consumer catching up on a backlog stores rows of three-day-old records now: they
    are filed under now, where a reader of "since an hour ago" lists, and found by their
    own times (`window_start`) by whoever asks for three days back."""
    records = scripted_batch(shift=-timedelta(days=3))
    head = copy.deepcopy(records[0])
    head["eventName"] = "UPSERT"  # the first record does not decode: still the identity
    with time_machine.travel(AT, tick=False):
        name = name_of([head, *records[1:]])
    assert name is not None and name.startswith("2026-11-23/12/20261123T120005000000Z-lambda-")
    assert identity([head, *records[1:]]) != identity(records[1:])


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


def test_an_emission_stored_by_a_clock_behind_ours_is_read(sink: RowSink) -> None:
    """Clocks differ between hosts: readers list an hour before `since`."""
    now = datetime.now(UTC)
    sink.put(ANALYTICS, emission_name(now - timedelta(minutes=59), "t", "x"), [{"n": 1}])
    assert [r["n"] for r in sink.read(ANALYTICS, now)] == [1]


def test_the_newest_emission_of_an_identity_supersedes_older_ones(sink: RowSink) -> None:
    """A redelivered batch stored hours after its first attempt (another folder) replaces
    it for every reader, whether or not the reader's range still reaches the first."""
    now = datetime.now(UTC)
    sink.put(ANALYTICS, emission_name(now - timedelta(hours=3), "t", "x"), [{"n": 1}, {"n": 2}])
    sink.put(ANALYTICS, emission_name(now - timedelta(hours=3), "t", "y"), [{"n": 5}])
    sink.put(ANALYTICS, emission_name(now, "t", "x"), [{"n": 3}])
    assert sorted(r["n"] for r in sink.read(ANALYTICS, now - timedelta(hours=4))) == [3, 5]
    assert [r["n"] for r in sink.read(ANALYTICS, now - timedelta(minutes=5))] == [3]
    sink.put(ANALYTICS, emission_name(now + timedelta(seconds=1), "t", "x"), [])  # emptied
    assert [r["n"] for r in sink.read(ANALYTICS, now - timedelta(hours=4))] == [5]


def test_newest_per_identity_compares_times_not_folders() -> None:
    late = emission_name(AT + timedelta(days=2), "lambda", "arn", "e1")
    early = emission_name(AT, "lambda", "arn", "e1")
    other = emission_name(AT, "kcl", "arn", "e1")
    assert newest_per_identity([late, early, other]) == sorted([late, other])
    assert newest_per_identity(["legacy"]) == ["legacy"]


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

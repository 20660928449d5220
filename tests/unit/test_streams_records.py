"""engine/streams/records.py: AWS's own record shapes (fixtures) decoded into ChangeRecords."""

from __future__ import annotations

import base64
import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from engine.streams.exceptions import MalformedRecordError
from engine.streams.records import (
    from_kinesis,
    from_kinesis_lambda,
    from_stream,
    sequence_int,
)
from tests.conftest import FIXTURES


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def test_lambda_stream_records_insert_modify_remove() -> None:
    raws = load("ddb-stream-insert-modify-remove.json")["Records"]
    records = [from_stream(r) for r in raws]
    assert [r.event_name for r in records] == ["INSERT", "MODIFY", "REMOVE"]
    first, second, third = records
    assert first.sequence == "4421584500000000017450439091"
    assert first.source.endswith("table/ExampleTableWithStream/stream/2015-06-27T00:48:05.899")
    assert first.table == "ExampleTableWithStream"
    assert first.created_at == datetime(2015, 4, 9, 0, 0, tzinfo=UTC)  # epoch seconds
    assert dict(first.keys) == {"Id": 101}  # N → int, not Decimal
    assert first.old is None and dict(first.new or {}) == {"Message": "New item!", "Id": 101}
    assert dict(second.old or {})["Message"] == "New item!"
    assert dict(second.new or {})["Message"] == "This item has changed"
    assert third.new is None and third.old is not None
    assert not any(r.ttl_expiry for r in records)  # a REMOVE by a user is not a TTL expiry
    assert first.size_bytes == 26 and first.event_id == "c4ca4238a0b923820dcc509a6f75849b"


def test_ttl_remove_is_recognised_and_binary_values_decoded() -> None:
    (raw,) = load("ddb-stream-ttl-remove.json")["Records"]
    record = from_stream(raw)
    assert record.event_name == "REMOVE" and record.ttl_expiry
    old = dict(record.old or {})
    assert old["asdf1"] == base64.b64decode("AAEqQQ==")  # base64 text in Lambda JSON → bytes
    assert sorted(old["asdf2"]) == sorted(
        [base64.b64decode("AAEqQQ=="), base64.b64decode("QSoBAA==")]
    )
    other = copy.deepcopy(raw)
    other["userIdentity"]["principalId"] = "someone.example.com"
    assert not from_stream(other).ttl_expiry


def test_sequence_numbers_compare_as_numbers() -> None:
    assert sequence_int("1100000000017454423010") > sequence_int("999")
    assert "1100000000017454423010" < "999"  # why: as strings they would not


def test_kinesis_destination_payload_in_milliseconds() -> None:
    payload = load("kinesis-ddb-destination-record.json")
    record = from_kinesis(json.dumps(payload).encode(), sequence="42", source="kinesis:shard-1")
    assert record.event_name == "MODIFY" and not record.ttl_expiry  # userIdentity null
    assert record.table == "DevDatabaseStack-TableCD117FA1-W7FDIJ71IKFN"
    assert record.created_at == datetime.fromtimestamp(1660599091.658, UTC)
    assert dict(record.new or {})["content"] == "Napoleon? 2"
    assert record.dedupe_key == ("kinesis:shard-1", "42")


def test_kinesis_microsecond_precision_and_ttl_identity() -> None:
    payload = load("kinesis-ddb-destination-record.json")
    payload["dynamodb"]["ApproximateCreationDateTime"] = 1660599091658123
    payload["eventName"] = "REMOVE"
    payload["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    record = from_kinesis(json.dumps(payload).encode(), sequence="7", source="k", sub_sequence=2)
    assert record.created_at == datetime.fromtimestamp(1660599091.658123, UTC)
    assert record.ttl_expiry and record.sequence == "7:2"


def test_kinesis_lambda_event_wraps_destination_payloads() -> None:
    raws = load("kinesis-ddb-destination-lambda-event.json")["Records"]
    records = [from_kinesis_lambda(r) for r in raws]
    assert [r.event_name for r in records] == ["INSERT", "INSERT"]
    assert records[0].source.endswith("/shardId-000000000000")
    assert records[0].sequence == raws[0]["kinesis"]["sequenceNumber"]
    assert dict(records[0].keys) == {"id": "record-1qit2y819gi"}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.update(eventName="UPSERT"), "eventName"),
        (lambda r: r["dynamodb"].pop("SequenceNumber"), "SequenceNumber"),
        (lambda r: r["dynamodb"].update(SequenceNumber="12a"), "SequenceNumber"),
        (lambda r: r["dynamodb"].pop("ApproximateCreationDateTime"), "ApproximateCreation"),
        (lambda r: r["dynamodb"].update(NewImage={"x": {"B": "not base64!"}}), "undecodable"),
        (lambda r: r["dynamodb"].update(NewImage={"x": {"Q": "1"}}), "undecodable"),
        (lambda r: r.update(dynamodb="nope"), "SequenceNumber"),
    ],
)
def test_malformed_stream_records_say_why(mutate: Any, message: str) -> None:
    raw = copy.deepcopy(load("ddb-stream-insert-modify-remove.json")["Records"][0])
    mutate(raw)
    with pytest.raises(MalformedRecordError, match=message):
        from_stream(raw)


def test_malformed_kinesis_payloads() -> None:
    with pytest.raises(MalformedRecordError, match="JSON"):
        from_kinesis(base64.b64decode("bWVvdw=="), sequence="456", source="k")  # "meow"
    with pytest.raises(MalformedRecordError, match="eventSource"):
        from_kinesis(b'{"eventSource": "aws:s3"}', sequence="1", source="k")
    with pytest.raises(MalformedRecordError, match="JSON"):
        from_kinesis("%%%", sequence="1", source="k")  # not base64 either

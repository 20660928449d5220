"""`awsspans.request_attributes`: what an AWS call's span says about the call, from its own
arguments — tables, key names and values, counts, expressions — and never an item's body."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from engine.awsspans import request_attributes


def test_a_get_names_its_table_and_key() -> None:
    attrs = request_attributes(
        "dynamodb",
        "GetItem",
        {"TableName": "t", "Key": {"pk": {"S": "note#1"}}, "ConsistentRead": True},
    )
    assert attrs == {
        "docsync.table": "t",
        "docsync.pk": "pk=note#1",
        "docsync.consistent_read": True,
    }


def test_a_query_names_its_partition_from_the_key_condition() -> None:
    attrs = request_attributes(
        "dynamodb",
        "Query",
        {
            "TableName": "t",
            "IndexName": "by-time",
            "KeyConditionExpression": "#p = :p AND #s > :s",
            "ExpressionAttributeNames": {"#p": "tpk", "#s": "tsk"},
            "ExpressionAttributeValues": {":p": {"S": "note#2026-01"}, ":s": {"S": "x"}},
            "Limit": 5,
        },
    )
    assert attrs["docsync.pk"] == "tpk=note#2026-01"
    assert (attrs["docsync.index"], attrs["docsync.limit"]) == ("by-time", 5)


def test_batches_and_transactions_are_counted_not_copied() -> None:
    write = request_attributes(
        "dynamodb",
        "BatchWriteItem",
        {
            "RequestItems": {
                "t": [
                    {"PutRequest": {"Item": {"pk": {"S": "a"}, "body": {"S": "secret"}}}},
                    {"DeleteRequest": {"Key": {"pk": {"S": "b"}}}},
                ]
            }
        },
    )
    assert write == {"docsync.tables": ("t",), "docsync.put_count": 1, "docsync.delete_count": 1}
    transact = request_attributes(
        "dynamodb",
        "TransactWriteItems",
        {
            "TransactItems": [
                {"Put": {"TableName": "t", "Item": {"pk": {"S": "a"}, "body": {"S": "secret"}}}},
                {"Update": {"TableName": "u", "Key": {"pk": {"S": "b"}}}},
            ]
        },
    )
    assert transact == {"docsync.item_count": 2, "docsync.tables": ("t", "u")}


def test_s3_and_sqs_name_the_bucket_key_and_queue() -> None:
    s3 = request_attributes("s3", "PutObject", {"Bucket": "b", "Key": "note/1.json", "Body": b"x"})
    assert s3 == {"docsync.bucket": "b", "docsync.key": "note/1.json"}
    sqs = request_attributes(
        "sqs",
        "SendMessageBatch",
        {"QueueUrl": "http://h/123/events", "Entries": [{"Id": "1", "MessageBody": "secret"}]},
    )
    assert sqs == {"docsync.queue": "events", "docsync.item_count": 1}


_VALUE = st.text(min_size=1, max_size=12).map(lambda s: "BODY:" + s)
_ITEM = st.dictionaries(
    st.sampled_from(["body", "title", "data", "note"]),
    _VALUE.map(lambda s: {"S": s}),
    min_size=1,
)


@given(item=_ITEM, body=_VALUE)
def test_no_body_ever_becomes_an_attribute(item: dict[str, Any], body: str) -> None:
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("dynamodb", "PutItem", {"TableName": "t", "Item": {"pk": {"S": "k"}, **item}}),
        (
            "dynamodb",
            "UpdateItem",
            {
                "TableName": "t",
                "Key": {"pk": {"S": "k"}},
                "UpdateExpression": "SET #b = :b",
                "ExpressionAttributeValues": {":b": {"S": body}},
            },
        ),
        ("dynamodb", "BatchWriteItem", {"RequestItems": {"t": [{"PutRequest": {"Item": item}}]}}),
        (
            "dynamodb",
            "TransactWriteItems",
            {"TransactItems": [{"Put": {"TableName": "t", "Item": item}}]},
        ),
        ("s3", "PutObject", {"Bucket": "b", "Key": "k", "Body": body.encode()}),
        ("sqs", "SendMessage", {"QueueUrl": "http://h/1/q", "MessageBody": body}),
    ]
    for service, operation, params in calls:
        for value in request_attributes(service, operation, params).values():
            assert "BODY:" not in str(value), (operation, value)

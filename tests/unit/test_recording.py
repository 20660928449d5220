"""engine/recording.py: what a redacted recording keeps, and what identifies a request."""

from __future__ import annotations

import json

from engine.recording import _redact_body, stable_part


def test_redaction_covers_items_and_update_expression_values() -> None:
    request = {
        "TableName": "t",
        "Key": {"pk": {"S": "change#1"}},
        "UpdateExpression": "SET #a0 = :v0, #a1 = :v1",
        "ExpressionAttributeNames": {"#a0": "title", "#a1": "status"},
        "ExpressionAttributeValues": {":v0": {"S": "secret title"}, ":v1": {"S": "open"}},
        "Item": {"body": {"S": '{"secret": 1}'}, "etag": {"S": "abc"}},
    }
    out = json.loads(_redact_body("dynamodb", {"text": json.dumps(request)})["text"])
    assert out["ExpressionAttributeValues"] == {":v0": {"S": "<redacted>"}, ":v1": {"S": "open"}}
    assert out["Item"] == {"body": {"S": "<redacted>"}, "etag": {"S": "abc"}}
    assert out["Key"] == request["Key"]
    assert _redact_body("s3", {"text": "a document"}) == {"text": "<redacted>"}


def test_the_stable_part_ignores_what_changes_between_runs() -> None:
    one = json.dumps({"TableName": "t", "Key": {"pk": {"S": "a"}}, "ExpressionAttributeValues":
                      {":tx": {"S": "uuid-1"}}}).encode()  # fmt: skip
    two = json.dumps({"TableName": "t", "Key": {"pk": {"S": "a"}}, "ExpressionAttributeValues":
                      {":tx": {"S": "uuid-2"}}}).encode()  # fmt: skip
    other = json.dumps({"TableName": "t", "Key": {"pk": {"S": "b"}}}).encode()
    url = "http://127.0.0.1:5000/"
    assert stable_part("dynamodb", "POST", url, one) == stable_part("dynamodb", "POST", url, two)
    assert stable_part("dynamodb", "POST", url, one) != stable_part("dynamodb", "POST", url, other)
    assert stable_part("s3", "GET", "http://h:1/b/k.json?x=1", b"") == "GET /b/k.json"

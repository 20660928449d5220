"""engine/recording.py: what a redacted recording keeps, and what identifies a request."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from engine.recording import Recorder, stable_part


def recorded(service: str, operation: str, body: bytes, tmp_path: Path) -> dict[str, Any]:
    """One attempt through a redacting Recorder's hooks (as botocore calls them): the line
    it appends."""
    path = tmp_path / f"{service}.jsonl"
    recorder = Recorder(path, redact_bodies=True)
    request = SimpleNamespace(
        method="POST", url="http://127.0.0.1:5000/", headers={"Authorization": "AWS4 x"}, body=body
    )
    recorder.before_send(request, f"before-send.{service}.{operation}")
    response = {"status_code": 200, "headers": {}, "body": body}
    recorder.response_received(response_dict=response, parsed_response=None, exception=None)
    (line,) = path.read_text().splitlines()
    entry: dict[str, Any] = json.loads(line)
    return entry


def test_redaction_covers_items_and_update_expression_values(tmp_path: Path) -> None:
    request = {
        "TableName": "t",
        "Key": {"pk": {"S": "change#1"}},
        "UpdateExpression": "SET #a0 = :v0, #a1 = :v1",
        "ExpressionAttributeNames": {"#a0": "title", "#a1": "status"},
        "ExpressionAttributeValues": {":v0": {"S": "secret title"}, ":v1": {"S": "open"}},
        "Item": {"body": {"S": '{"secret": 1}'}, "etag": {"S": "abc"}},
    }
    entry = recorded("dynamodb", "UpdateItem", json.dumps(request).encode(), tmp_path)
    assert entry["request"]["headers"] == {"Authorization": "<redacted>"}
    for side in ("request", "response"):
        out = json.loads(entry[side]["body"]["text"])
        assert out["ExpressionAttributeValues"] == {
            ":v0": {"S": "<redacted>"},
            ":v1": {"S": "open"},
        }
        assert out["Item"] == {"body": {"S": "<redacted>"}, "etag": {"S": "abc"}}
        assert out["Key"] == request["Key"]
    s3 = recorded("s3", "PutObject", b"a document", tmp_path)
    assert s3["request"]["body"] == s3["response"]["body"] == {"text": "<redacted>"}


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

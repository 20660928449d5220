"""engine/store/history.py without AWS (botocore's Stubber): batches of 25, a repeated key
sent once, throttled items sent again, a batch that stays throttled is an error."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from engine.exceptions import StoreError
from engine.store import history as history_module
from engine.store.history import HistoryStore, table_definition


def entry(n: int, version: int = 1) -> dict[str, Any]:
    return {"pk": f"change#C{n}", "version": version, "change": "create", "at": "x"}


def client() -> Any:
    return boto3.client(
        "dynamodb", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )


class Recorder:
    """A DynamoDB client that accepts every batch and keeps what it was sent."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.batches.append(RequestItems["h"])
        return {"UnprocessedItems": {}}


def test_batches_of_25_and_a_repeated_key_sent_once() -> None:
    ddb = Recorder()
    entries = [entry(n) for n in range(30)] + [entry(3)]  # entry 3 redelivered
    assert HistoryStore(ddb, "h").put_many(entries) == 30  # type: ignore[arg-type]
    assert [len(b) for b in ddb.batches] == [25, 5]
    keys = [(r["PutRequest"]["Item"]["pk"]["S"], r["PutRequest"]["Item"]["version"]["N"])
            for b in ddb.batches for r in b]  # fmt: skip
    assert len(set(keys)) == 30 and ("change#C3", "1") in keys


def test_throttled_items_are_sent_again_then_given_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("engine.store.history.time.sleep", lambda _s: None)
    unprocessed = {"h": [{"PutRequest": {"Item": {"pk": {"S": "change#C1"}}}}]}
    ddb = client()
    with Stubber(ddb) as stub:
        stub.add_response("batch_write_item", {"UnprocessedItems": unprocessed})
        stub.add_response("batch_write_item", {"UnprocessedItems": {}})
        assert HistoryStore(ddb, "h").put_many([entry(1)]) == 1
        stub.assert_no_pending_responses()
    ddb = client()
    with Stubber(ddb) as stub:
        for _ in range(history_module.MAX_ROUNDS):
            stub.add_response("batch_write_item", {"UnprocessedItems": unprocessed})
        with pytest.raises(StoreError, match="still throttled"):
            HistoryStore(ddb, "h").put_many([entry(1)])


def test_the_table_definition_is_keyed_by_document_and_version() -> None:
    spec = table_definition("docsync-history")
    assert spec["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "version", "KeyType": "RANGE"},
    ]
    assert "GlobalSecondaryIndexes" not in spec and "StreamSpecification" not in spec

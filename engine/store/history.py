"""The history table: one item per committed change of a document (engine/streams/history.py
derives them). Key `pk` = type#id, sort `version` (number); TTL on `expires_at`. No stream,
no GSI: only the stream consumers write it, and it is read per document (newest first) or
scanned whole for `docsync stats`.

Writes are BatchWriteItem puts of deterministic items: a redelivered record overwrites its
entry with the same bytes, so recording is idempotent without a condition (which a batch
cannot carry) and costs one call per 25 entries.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any

from engine.exceptions import StoreError
from engine.store.base import ErrorMap, StoreCall
from engine.store.item import deserialize, serialize

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

BATCH = 25
MAX_ROUNDS = 10  # of unprocessed items sent again; then the driver retries the batch
HISTORY_ERRORS = ErrorMap("DynamoDB", StoreError)


def table_definition(name: str) -> dict[str, Any]:
    """CreateTable arguments (also what the CloudFormation template declares)."""
    return {
        "TableName": name,
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "version", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "version", "AttributeType": "N"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


class HistoryStore:
    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._ddb = client
        self.table = table
        seam = StoreCall(HISTORY_ERRORS)
        self._call = partial(seam, target=f"history table {table}")

    def put_many(self, entries: Iterable[dict[str, Any]]) -> int:
        """Store entries (the last one wins for a repeated key); returns how many."""
        unique = {(e["pk"], e["version"]): e for e in entries}
        items = list(unique.values())
        for start in range(0, len(items), BATCH):
            chunk = items[start : start + BATCH]
            request: Any = {
                self.table: [{"PutRequest": {"Item": serialize(item)}} for item in chunk]
            }
            delay = 0.05
            for _ in range(MAX_ROUNDS):
                response = self._call(
                    "BatchWriteItem", self._ddb.batch_write_item, RequestItems=request
                )
                request = response.get("UnprocessedItems") or {}
                if not request:
                    break
                time.sleep(delay)  # throttled part of a batch: back off, send the rest again
                delay = min(delay * 2, 2.0)
            else:
                raise StoreError(f"history table {self.table}: still throttled, batch not stored")
        return len(items)

    def list(self, type_name: str, doc_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        """A document's entries, newest first."""
        out: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": f"{type_name}#{doc_id}"}},
            "ScanIndexForward": False,
        }
        while True:
            if limit is not None:
                kwargs["Limit"] = max(1, limit - len(out))
            response = self._call("Query", self._ddb.query, **kwargs)
            out.extend(_plain(deserialize(i)) for i in response.get("Items", []))
            start = response.get("LastEvaluatedKey")
            if not start or (limit is not None and len(out) >= limit):
                return out[:limit] if limit is not None else out
            kwargs["ExclusiveStartKey"] = start

    def get(self, type_name: str, doc_id: str, version: int) -> dict[str, Any] | None:
        response = self._call(
            "GetItem",
            self._ddb.get_item,
            TableName=self.table,
            Key={"pk": {"S": f"{type_name}#{doc_id}"}, "version": {"N": str(version)}},
        )
        item = response.get("Item")
        return _plain(deserialize(item)) if item else None

    def scan(self) -> Iterator[dict[str, Any]]:
        """Every entry (for `docsync stats`), in no particular order."""
        kwargs: dict[str, Any] = {"TableName": self.table}
        while True:
            response = self._call("Scan", self._ddb.scan, **kwargs)
            for item in response.get("Items", []):
                yield _plain(deserialize(item))
            start = response.get("LastEvaluatedKey")
            if not start:
                return
            kwargs["ExclusiveStartKey"] = start


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    """Numbers come back as Decimal: versions and times are whole, lists hold strings."""
    return {
        k: (int(v) if isinstance(v, Decimal) else list(v) if isinstance(v, list) else v)
        for k, v in item.items()
    }

"""The DynamoDB stream of the cache table: its ARN, its shards, iterators and records.

The stream's own ways of losing data come back as typed results, not exceptions: a position
trimmed by the 24-hour retention, a shard that is gone, an iterator past its 15 minutes. The
consumer decides what each means (count it, read from TRIM_HORIZON, get a new iterator);
anything else is a `StoreError` from the seam (engine/store/base.py).
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any

from engine.exceptions import StoreError
from engine.store.base import ErrorMap, StoreCall
from engine.store.errors import error_code

if TYPE_CHECKING:
    from engine.aws import AwsClients

STREAM_ERRORS = ErrorMap("DynamoDB Streams", StoreError)
TABLE_ERRORS = ErrorMap("DynamoDB", StoreError)


class Lost(Enum):
    """Why a read found nothing to read."""

    TRIMMED = "TrimmedDataAccessException"  # the position is older than the retention
    SHARD_GONE = "ResourceNotFoundException"  # the shard itself has been trimmed
    EXPIRED = "ExpiredIteratorException"  # iterators live 15 minutes


class StreamStore:
    def __init__(self, clients: AwsClients, streams_client: Any | None = None) -> None:
        self._clients = clients
        self._client = streams_client
        self._call = StoreCall(STREAM_ERRORS)

    @property
    def _streams(self) -> Any:
        if self._client is None:  # made on first use: `docsync stats` only describes the table
            self._client = self._clients.client("dynamodbstreams")
        return self._client

    def table_stream(self, table: str) -> tuple[str | None, bool]:
        """The table's latest stream ARN (None: never had one), and whether it is enabled."""
        described = StoreCall(TABLE_ERRORS)(
            "DescribeTable", self._clients.dynamodb.describe_table, target=table, TableName=table
        )["Table"]
        enabled = bool(described.get("StreamSpecification", {}).get("StreamEnabled", False))
        return described.get("LatestStreamArn"), enabled

    def latest_arn(self, table: str) -> str | None:
        return self.table_stream(table)[0]

    def shards(self, arn: str) -> list[dict[str, Any]]:
        """Every shard of the stream as DescribeStream gives it (all pages)."""
        raw: list[dict[str, Any]] = []
        start: str | None = None
        while True:
            kwargs: dict[str, Any] = {"StreamArn": arn}
            if start:
                kwargs["ExclusiveStartShardId"] = start
            description = self._call("DescribeStream", self._streams.describe_stream, **kwargs)
            raw.extend(description["StreamDescription"].get("Shards", []))
            start = description["StreamDescription"].get("LastEvaluatedShardId")
            if not start:
                return raw

    def iterator(
        self, arn: str, shard_id: str, kind: str, sequence: str | None = None
    ) -> str | Lost:
        """A shard iterator, or `Lost.TRIMMED` / `Lost.SHARD_GONE`."""
        kwargs: dict[str, Any] = {"StreamArn": arn, "ShardId": shard_id, "ShardIteratorType": kind}
        if sequence is not None:
            kwargs["SequenceNumber"] = sequence
        try:
            response = self._call("GetShardIterator", self._streams.get_shard_iterator, **kwargs)
        except StoreError as exc:
            return _lost(exc, Lost.TRIMMED, Lost.SHARD_GONE)
        return str(response["ShardIterator"])

    def records(self, iterator: str, limit: int) -> dict[str, Any] | Lost:
        """One GetRecords response, or `Lost.EXPIRED` / `Lost.TRIMMED`."""
        try:
            response: dict[str, Any] = self._call(
                "GetRecords", self._streams.get_records, ShardIterator=iterator, Limit=limit
            )
        except StoreError as exc:
            return _lost(exc, Lost.EXPIRED, Lost.TRIMMED)
        return response


def _lost(exc: StoreError, *expected: Lost) -> Lost:
    """The seam translated a botocore error: one of `expected` is an outcome, not a failure."""
    code = error_code(exc.__cause__) if exc.__cause__ is not None else ""
    for lost in expected:
        if code == lost.value:
            return lost
    raise exc

"""DynamoDB Streams as an in-memory log: the twin of `engine/store/stream.py`.

`MemoryDynamoDB` (given this store) appends every committed change of a table created with a
StreamSpecification; the stream store's reads (`engine/store/abc.py` `Stream`) read it back.

What it models, as DynamoDB Streams does (and moto does not):
- records in GetRecords' shape (eventVersion 1.1, ApproximateCreationDateTime in whole
  seconds, the view type's images, a TTL deletion's `userIdentity`), one per item changed;
- sequence numbers that grow within a stream but are not consecutive (a step of 10), are
  decimal strings of 21 digits and more, and change length within a run (from 22 digits on
  once 10**21 is passed): a consumer that adds 1 or compares them as text fails here;
- shards that close and split (`rotate`): a closed shard's last GetRecords has no
  NextShardIterator, children name their parent, and one key's records stay in one shard;
- the 24-hour retention: older records are trimmed (an iterator at a trimmed position, or a
  read that reaches one, is `Lost.TRIMMED`), a shard closed for longer is deleted
  (`Lost.SHARD_GONE`), and an iterator lives 15 minutes (`Lost.EXPIRED`); time comes from
  the injected `clock`.

What it does not: DescribeStream pages, read throttling (5 GetRecords/s per shard), the 1 MB
page limit, a stream disabled and re-enabled (a new ARN). Iterators are self-describing
strings, not opaque ones, so nothing has to be remembered for them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from engine.exceptions import StoreError
from engine.store.abc import Stream
from engine.store.stream import Lost, StreamStore

RETENTION_S = 24 * 3600
ITERATOR_TTL_S = 15 * 60
STEP = 10
FIRST_SEQUENCE = 10**21 - STEP * 50  # 21 digits, and 22 from about the 50th record on
ACCOUNT = "123456789012"
TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
IMAGES = {
    "KEYS_ONLY": (),
    "NEW_IMAGE": ("NewImage",),
    "OLD_IMAGE": ("OldImage",),
    "NEW_AND_OLD_IMAGES": ("NewImage", "OldImage"),
}


@dataclass
class _Shard:
    shard_id: str
    parent_id: str | None
    start: int  # its StartingSequenceNumber
    records: list[tuple[int, float, dict[str, Any]]] = field(default_factory=list)
    end: int | None = None  # its EndingSequenceNumber, once closed
    closed_at: float | None = None
    trimmed_through: int = 0  # the newest sequence number lost to the retention

    def describe(self) -> dict[str, Any]:
        numbers = {"StartingSequenceNumber": str(self.start)}
        if self.end is not None:
            numbers["EndingSequenceNumber"] = str(self.end)
        out: dict[str, Any] = {"ShardId": self.shard_id, "SequenceNumberRange": numbers}
        if self.parent_id:
            out["ParentShardId"] = self.parent_id
        return out


@dataclass
class _Log:
    arn: str
    view: str
    shards: list[_Shard] = field(default_factory=list)

    def open_shards(self) -> list[_Shard]:
        return [s for s in self.shards if s.end is None]


class MemoryStreamStore:
    """The streams of a `MemoryDynamoDB`'s tables, one log of shards per table."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        region: str = "us-east-1",
        retention_s: float = RETENTION_S,
    ) -> None:
        self._clock = clock
        self._region = region
        self._retention_s = retention_s
        self._lock = threading.Lock()
        self._logs: dict[str, _Log] = {}
        self._next = FIRST_SEQUENCE

    # -- the writer's side (MemoryDynamoDB) ----------------------------------------------

    def enable(self, table: str, view: str) -> None:
        """Give `table` a stream (CreateTable with a StreamSpecification)."""
        now = self._clock()
        label = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        arn = f"arn:aws:dynamodb:{self._region}:{ACCOUNT}:table/{table}/stream/{label}"
        with self._lock:
            log = self._logs[table] = _Log(arn, view)
            log.shards.append(self._shard(None))

    def record(
        self,
        table: str,
        keys: dict[str, Any],
        old: dict[str, Any] | None,
        new: dict[str, Any] | None,
        *,
        ttl: bool = False,
    ) -> None:
        """Append one committed change of one item (call in commit order)."""
        now = self._clock()
        name = "INSERT" if old is None else "REMOVE" if new is None else "MODIFY"
        with self._lock:
            log = self._logs[table]
            opened = log.open_shards()
            shard = opened[_slot(keys, len(opened))]
            body: dict[str, Any] = {
                "ApproximateCreationDateTime": datetime.fromtimestamp(int(now), UTC),
                "Keys": copy.deepcopy(keys),
            }
            images = {"NewImage": new, "OldImage": old}
            for image in IMAGES[log.view]:
                if images[image] is not None:
                    body[image] = copy.deepcopy(images[image])
            body["SequenceNumber"] = str(self._sequence())
            body["SizeBytes"] = len(json.dumps([keys, *images.values()], default=str))
            body["StreamViewType"] = log.view
            raw: dict[str, Any] = {
                "eventID": uuid.uuid4().hex,
                "eventName": name,
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": self._region,
                "dynamodb": body,
            }
            if ttl:
                raw["userIdentity"] = dict(TTL_IDENTITY)
            shard.records.append((int(body["SequenceNumber"]), now, raw))

    def rotate(self, table: str, children: int = 1) -> list[str]:
        """Close every open shard and open `children` children of each (DynamoDB rolls its
        shards over every few hours, and splits them with the table's partitions)."""
        now = self._clock()
        with self._lock:
            log = self._logs[table]
            born: list[_Shard] = []
            for shard in log.open_shards():
                shard.end = self._sequence()
                shard.closed_at = now
                born.extend(self._shard(shard.shard_id) for _ in range(children))
            log.shards.extend(born)
            return [s.shard_id for s in born]

    def _sequence(self) -> int:
        self._next += STEP
        return self._next

    def _shard(self, parent: str | None) -> _Shard:
        start = self._sequence()
        stamp = int(self._clock() * 1000)
        return _Shard(f"shardId-{stamp:020d}-{start % 10**8:08x}", parent, start)

    def _trim(self, log: _Log) -> None:
        """What the retention has taken by now (call with the lock held)."""
        horizon = self._clock() - self._retention_s
        for shard in log.shards:
            while shard.records and shard.records[0][1] < horizon:
                shard.trimmed_through = shard.records.pop(0)[0]
        log.shards = [s for s in log.shards if s.closed_at is None or s.closed_at >= horizon]

    # -- the reader's side (the `Stream` interface) --------------------------------------

    def table_stream(self, table: str) -> tuple[str | None, bool]:
        with self._lock:
            log = self._logs.get(table)
        return (log.arn, True) if log is not None else (None, False)

    def latest_arn(self, table: str) -> str | None:
        return self.table_stream(table)[0]

    def shards(self, arn: str) -> list[dict[str, Any]]:
        with self._lock:
            log = self._log(arn)
            self._trim(log)
            return [s.describe() for s in log.shards]

    def iterator(
        self, arn: str, shard_id: str, kind: str, sequence: str | None = None
    ) -> str | Lost:
        with self._lock:
            log = self._log(arn)
            self._trim(log)
            shard = next((s for s in log.shards if s.shard_id == shard_id), None)
            if shard is None:
                return Lost.SHARD_GONE
            if kind == "TRIM_HORIZON":
                position = max(shard.start, shard.trimmed_through + 1)
            elif kind == "LATEST":
                last = shard.records[-1][0] if shard.records else shard.trimmed_through
                position = max(shard.start, last + 1)
            elif kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER") and sequence:
                number = int(sequence)
                if number < shard.start or (shard.end is not None and number > shard.end):
                    raise StoreError(f"sequence {sequence} is not in shard {shard_id}")
                position = number if kind == "AT_SEQUENCE_NUMBER" else number + 1
                if position <= shard.trimmed_through:
                    return Lost.TRIMMED
            else:
                raise StoreError(f"GetShardIterator: invalid type {kind!r} or no sequence")
            return _token(arn, shard_id, position, self._clock())

    def records(self, iterator: str, limit: int) -> dict[str, Any] | Lost:
        arn, shard_id, position, issued = _untoken(iterator)
        now = self._clock()
        if now - issued > ITERATOR_TTL_S:
            return Lost.EXPIRED
        with self._lock:
            log = self._log(arn)
            self._trim(log)
            shard = next((s for s in log.shards if s.shard_id == shard_id), None)
            if shard is None or position <= shard.trimmed_through:
                return Lost.TRIMMED
            batch = [raw for seq, _at, raw in shard.records if seq >= position][: max(1, limit)]
            out: dict[str, Any] = {"Records": copy.deepcopy(batch)}
            if batch:
                position = int(batch[-1]["dynamodb"]["SequenceNumber"]) + 1
            if shard.end is None or not _done(shard, position):
                out["NextShardIterator"] = _token(arn, shard_id, position, now)
            return out

    def _log(self, arn: str) -> _Log:
        log = next((x for x in self._logs.values() if x.arn == arn), None)
        if log is None:
            raise StoreError(f"DynamoDB Streams: no stream {arn}")
        return log


def _done(shard: _Shard, position: int) -> bool:
    """A closed shard read past its last record."""
    return not any(seq >= position for seq, _at, _raw in shard.records)


def _slot(keys: dict[str, Any], shards: int) -> int:
    """Which of the open shards an item's records go to: always the same one for a key."""
    digest = hashlib.md5(json.dumps(keys, sort_keys=True).encode()).digest()
    return int.from_bytes(digest[:4], "big") % shards


def _token(arn: str, shard_id: str, position: int, issued: float) -> str:
    return f"{arn}|{shard_id}|{position}|{issued!r}"


def _untoken(token: str) -> tuple[str, str, int, float]:
    try:
        arn, shard_id, position, issued = token.split("|")
        return arn, shard_id, int(position), float(issued)
    except ValueError as exc:
        raise StoreError(f"GetRecords: not an iterator: {token[:40]!r}") from exc


def _conforms(store: MemoryStreamStore) -> Stream:
    return store  # mypy checks the twin against the protocol here


def _real(store: StreamStore) -> Stream:
    return store  # and the AWS store against it

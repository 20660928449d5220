"""The leases table: one `Lease` (owner + expiry, conditional writes) for the stream consumer
and the reconcile lock, and the consumer's checkpoints beside it. Never in the cache table: a
consumer's own writes would feed back into the stream it reads.

- `streams#consumer#<stream ARN>`: who consumes the stream now, until when (`expires`), and
  its last status (for `docsync stats`). Taken with a conditional write when free, expired or
  already ours; renewed well before it expires; a standby takes it once it has expired.
- a reconcile lock (`reconcile#…`): the same lease, but its item goes on release (`keep=False`:
  PutItem/DeleteItem, nothing left behind), where the consumer's stays (UpdateItem, its status).
- `streams#checkpoint#<stream ARN>#<shard>`: the last sequence number whose effects are
  stored, and whether the shard is finished (closed and read to its end). Written in one
  transaction with a condition on the lease, so a consumer that lost its lease cannot move
  them (a fencing check, not a clock).
- `streams#pending#<stream ARN>`: the emission being stored (its sink name, the checkpoints
  it takes the shards to), saved under the same fence before its rows are written and
  removed with the checkpoints that follow them: whoever finds it next knows from the sink
  whether to roll the checkpoints forward or to read those records again.
Keys name the stream ARN: moto gives every table the same shard ids and sequence numbers.
Every call goes through the seam (engine/store/base.py): a lost race is `False` or
`LeaseLostError`, any other failure a `StoreError`, never botocore's own.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from engine.exceptions import LeaseLostError, StoreError
from engine.store.base import ConditionFailed, ErrorMap, StoreCall
from engine.store.values import plain

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from engine.store.abc import LeaseHolder

_ser, _de = TypeSerializer(), TypeDeserializer()
LEASE_ERRORS = ErrorMap("DynamoDB leases", StoreError, conditional=True)


def consumer_key(stream_arn: str) -> str:
    return f"streams#consumer#{stream_arn}"


def checkpoint_key(stream_arn: str, shard_id: str) -> str:
    return f"streams#checkpoint#{stream_arn}#{shard_id}"


def pending_key(stream_arn: str) -> str:
    return f"streams#pending#{stream_arn}"


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(round(value, 6)))
    if isinstance(value, dict):
        return {k: _dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dynamo(v) for v in value]
    return value


def _key(name: str) -> dict[str, Any]:
    return {"lease_key": {"S": name}}


class Lease:
    """One holder at a time of the item `key`, until `expires` (epoch seconds)."""

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        key: str,
        ttl_s: float,
        owner: str | None = None,
        clock: Callable[[], float] = time.time,
        *,
        keep: bool = True,
    ) -> None:
        self._ddb = client
        self._call = StoreCall(LEASE_ERRORS)
        self.table = table
        self.key = key
        self.ttl_s = ttl_s
        self.owner = owner or default_owner()
        self.keep = keep
        self._clock = clock

    def try_acquire(self, status: Mapping[str, Any] | None = None) -> bool:
        """Take or renew the lease; False when another holder has it, unexpired."""
        now = self._clock()
        condition = "attribute_not_exists(lease_key) OR expires < :now OR #o = :me"
        try:
            if self.keep:
                self._call(
                    "UpdateItem",
                    self._ddb.update_item,
                    target=self.key,
                    TableName=self.table,
                    Key=_key(self.key),
                    UpdateExpression=(
                        "SET #o = :me, expires = :exp, renewed_at = :now, #s = :status"
                    ),
                    ConditionExpression=condition,
                    ExpressionAttributeNames={"#o": "owner", "#s": "status"},
                    ExpressionAttributeValues={
                        ":me": {"S": self.owner},
                        ":now": {"N": f"{now:.3f}"},
                        ":exp": {"N": f"{now + self.ttl_s:.3f}"},
                        ":status": _ser.serialize(_dynamo(dict(status or {}))),
                    },
                )
            else:
                self._call(
                    "PutItem",
                    self._ddb.put_item,
                    target=self.key,
                    TableName=self.table,
                    Item={
                        **_key(self.key),
                        "owner": {"S": self.owner},
                        "expires": {"N": f"{now + self.ttl_s:.3f}"},
                    },
                    ConditionExpression=condition,
                    ExpressionAttributeNames={"#o": "owner"},
                    ExpressionAttributeValues={
                        ":now": {"N": f"{now:.3f}"},
                        ":me": {"S": self.owner},
                    },
                )
        except ConditionFailed:
            return False
        return True

    def release(self, status: Mapping[str, Any] | None = None) -> None:
        """Let the next holder take over at once, only if still ours (else nothing happens);
        a kept item stays with its last status."""
        try:
            if self.keep:
                self._call(
                    "UpdateItem",
                    self._ddb.update_item,
                    target=self.key,
                    TableName=self.table,
                    Key=_key(self.key),
                    UpdateExpression="SET expires = :zero, #s = :status",
                    ConditionExpression="#o = :me",
                    ExpressionAttributeNames={"#o": "owner", "#s": "status"},
                    ExpressionAttributeValues={
                        ":me": {"S": self.owner},
                        ":zero": {"N": "0"},
                        ":status": _ser.serialize(_dynamo(dict(status or {}))),
                    },
                )
            else:
                self._call(
                    "DeleteItem",
                    self._ddb.delete_item,
                    target=self.key,
                    TableName=self.table,
                    Key=_key(self.key),
                    ConditionExpression="#o = :me",
                    ExpressionAttributeNames={"#o": "owner"},
                    ExpressionAttributeValues={":me": {"S": self.owner}},
                )
        except ConditionFailed:
            pass

    def fence(self) -> dict[str, Any]:
        """A TransactWriteItems ConditionCheck: the lease is still ours."""
        return {
            "ConditionCheck": {
                "TableName": self.table,
                "Key": _key(self.key),
                "ConditionExpression": "#o = :me",
                "ExpressionAttributeNames": {"#o": "owner"},
                "ExpressionAttributeValues": {":me": {"S": self.owner}},
            }
        }


def consumer_lease(
    client: DynamoDBClient,
    table: str,
    stream_arn: str,
    ttl_s: float,
    owner: str | None = None,
    clock: Callable[[], float] = time.time,
) -> Lease:
    """The lease of the one local consumer of `stream_arn`."""
    return Lease(client, table, consumer_key(stream_arn), ttl_s, owner, clock)


def read_lease(client: DynamoDBClient, table: str, stream_arn: str) -> dict[str, Any] | None:
    """The consumer lease item as plain data (None if no consumer ever ran)."""
    response = StoreCall(LEASE_ERRORS)(
        "GetItem",
        client.get_item,
        target=table,
        TableName=table,
        Key=_key(consumer_key(stream_arn)),
        ConsistentRead=True,
    )
    item = response.get("Item")
    return {k: plain(_de.deserialize(v)) for k, v in item.items()} if item else None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    sequence: str | None = None
    finished: bool = False
    # The oldest record of a key still pending repair (engine/streams/pending.py): a
    # restart reads again from there, feeding only the pending set up to `sequence`.
    replay_at: str | None = None


@dataclass(frozen=True, slots=True)
class PendingEmission:
    """Rows about to be stored as `name`, and the checkpoints that hold once they are."""

    name: str
    positions: Mapping[str, Checkpoint]


def _checkpoint(raw: Mapping[str, Any]) -> Checkpoint:
    seq, replay = raw.get("sequence"), raw.get("replay_at")
    return Checkpoint(
        str(seq) if seq else None, bool(raw.get("finished", False)), str(replay) if replay else None
    )


class Checkpoints:
    def __init__(self, client: DynamoDBClient, table: str, stream_arn: str) -> None:
        self._ddb = client
        self._call = StoreCall(LEASE_ERRORS)
        self.table = table
        self.stream_arn = stream_arn

    def load(self, shard_ids: list[str]) -> dict[str, Checkpoint]:
        found: dict[str, Checkpoint] = {}
        by_key = {checkpoint_key(self.stream_arn, s): s for s in shard_ids}
        for item in batch_get(self._ddb, self.table, [_key(k) for k in by_key]):
            shard = by_key.get(str(item["lease_key"]))
            if shard is not None:
                found[shard] = _checkpoint(item)
        return found

    def load_pending(self) -> PendingEmission | None:
        """The emission a consumer began and did not finish (None: there is none)."""
        response = self._call(
            "GetItem",
            self._ddb.get_item,
            target="pending emission",
            TableName=self.table,
            Key=_key(pending_key(self.stream_arn)),
            ConsistentRead=True,
        )
        raw = response.get("Item")
        if not raw:
            return None
        item = {k: plain(_de.deserialize(v)) for k, v in raw.items()}
        positions = {
            str(shard): _checkpoint(cp) for shard, cp in (item.get("positions") or {}).items()
        }
        return PendingEmission(str(item["name"]), positions)

    def begin(self, pending: PendingEmission, lease: LeaseHolder) -> None:
        """Phase one: record the emission before its rows are written (replacing any other)."""
        item: dict[str, Any] = {
            **_key(pending_key(self.stream_arn)),
            "stream_arn": {"S": self.stream_arn},
            "name": {"S": pending.name},
            "positions": _ser.serialize(
                {
                    shard: {
                        "sequence": cp.sequence,
                        "finished": cp.finished,
                        "replay_at": cp.replay_at,
                    }
                    for shard, cp in pending.positions.items()
                }
            ),
            "owner": {"S": lease.owner},
            "updated_at": {"N": f"{time.time():.3f}"},
        }
        self._transact([lease.fence(), {"Put": {"TableName": self.table, "Item": item}}], lease)

    def drop_pending(self, lease: LeaseHolder) -> None:
        """Forget a begun emission whose rows were never stored."""
        self._transact([lease.fence(), self._settled()], lease)

    def save(
        self, updates: Mapping[str, Checkpoint], lease: LeaseHolder, *, settle: bool = False
    ) -> None:
        """Store checkpoints, each transaction fenced by the lease (LeaseLostError if not ours);
        with `settle`, the last one also removes the pending emission (phase two)."""
        items = list(updates.items())
        now = f"{time.time():.3f}"
        while items or settle:
            chunk, items = items[:98], items[98:]
            writes: list[Any] = [lease.fence()]
            for shard, cp in chunk:
                item: dict[str, Any] = {
                    **_key(checkpoint_key(self.stream_arn, shard)),
                    "stream_arn": {"S": self.stream_arn},
                    "shard_id": {"S": shard},
                    "finished": {"BOOL": cp.finished},
                    "owner": {"S": lease.owner},
                    "updated_at": {"N": now},
                }
                if cp.sequence:
                    item["sequence"] = {"S": cp.sequence}
                if cp.replay_at:
                    item["replay_at"] = {"S": cp.replay_at}
                writes.append({"Put": {"TableName": self.table, "Item": item}})
            if settle and not items:
                writes.append(self._settled())
                settle = False
            self._transact(writes, lease)

    def _settled(self) -> dict[str, Any]:
        return {"Delete": {"TableName": self.table, "Key": _key(pending_key(self.stream_arn))}}

    def _transact(self, writes: list[Any], lease: LeaseHolder) -> None:
        try:
            self._call(
                "TransactWriteItems",
                self._ddb.transact_write_items,
                target="checkpoints",
                TransactItems=writes,
            )
        except ConditionFailed as exc:  # only the fence carries a condition
            raise LeaseLostError(f"{lease.key} is held by another consumer") from exc


def batch_get(
    client: DynamoDBClient, table: str, keys: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Consistent BatchGetItem of `keys` (100 a call, unprocessed keys sent again), as plain
    attribute values (numbers as Decimal)."""
    call = StoreCall(ErrorMap("DynamoDB", StoreError))
    out: list[dict[str, Any]] = []
    pending = list(keys)
    while pending:
        chunk, pending = pending[:100], pending[100:]
        request: Any = {table: {"Keys": chunk, "ConsistentRead": True}}
        while request:
            response = call(
                "BatchGetItem", client.batch_get_item, target=table, RequestItems=request
            )
            for raw in response.get("Responses", {}).get(table, []):
                out.append({k: _de.deserialize(v) for k, v in raw.items()})
            request = response.get("UnprocessedKeys") or {}
    return out

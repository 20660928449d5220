"""The local consumer's lease and checkpoints, in the leases table (never in the cache table:
a consumer's own writes would feed back into the stream it reads).

- `streams#consumer#<stream ARN>`: who consumes the stream now, until when (`expires`), and
  its last status (for `docsync stats`). Taken with a conditional write when free, expired or
  already ours; renewed well before it expires; a standby takes it once it has expired.
- `streams#checkpoint#<stream ARN>#<shard>`: the last sequence number whose effects are
  stored, and whether the shard is finished (closed and read to its end). Written in one
  transaction with a condition on the lease, so a consumer that lost its lease cannot move
  them (a fencing check, not a clock).
- `streams#pending#<stream ARN>`: the emission being stored (its sink name, the checkpoints
  it takes the shards to), saved under the same fence before its rows are written and
  removed with the checkpoints that follow them: whoever finds it next knows from the sink
  whether to roll the checkpoints forward or to read those records again.
Keys name the stream ARN: moto gives every table the same shard ids and sequence numbers.
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
from botocore.exceptions import BotoCoreError, ClientError

from engine.exceptions import StoreError
from engine.store.errors import error_code, is_conditional_failure
from engine.streams.exceptions import LeaseLostError
from engine.streams.records import plain

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_ser, _de = TypeSerializer(), TypeDeserializer()


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


class ConsumerLease:
    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        stream_arn: str,
        ttl_s: float,
        owner: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ddb = client
        self.table = table
        self.key = consumer_key(stream_arn)
        self.ttl_s = ttl_s
        self.owner = owner or default_owner()
        self._clock = clock

    def try_acquire(self, status: Mapping[str, Any] | None = None) -> bool:
        """Take or renew the lease; False when another consumer holds it, unexpired."""
        now = self._clock()
        values: dict[str, Any] = {
            ":me": {"S": self.owner},
            ":now": {"N": f"{now:.3f}"},
            ":exp": {"N": f"{now + self.ttl_s:.3f}"},
            ":status": _ser.serialize(_dynamo(dict(status or {}))),
        }
        try:
            self._ddb.update_item(
                TableName=self.table,
                Key={"lease_key": {"S": self.key}},
                UpdateExpression="SET #o = :me, expires = :exp, renewed_at = :now, #s = :status",
                ConditionExpression="attribute_not_exists(lease_key) OR expires < :now OR #o = :me",
                ExpressionAttributeNames={"#o": "owner", "#s": "status"},
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                return False
            raise StoreError(f"lease {self.key}: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"lease {self.key}: {exc}") from exc
        return True

    def release(self, status: Mapping[str, Any] | None = None) -> None:
        """Let a standby take over at once (only if still ours), leaving the last status."""
        try:
            self._ddb.update_item(
                TableName=self.table,
                Key={"lease_key": {"S": self.key}},
                UpdateExpression="SET expires = :zero, #s = :status",
                ConditionExpression="#o = :me",
                ExpressionAttributeNames={"#o": "owner", "#s": "status"},
                ExpressionAttributeValues={
                    ":me": {"S": self.owner},
                    ":zero": {"N": "0"},
                    ":status": _ser.serialize(_dynamo(dict(status or {}))),
                },
            )
        except ClientError as exc:
            if not is_conditional_failure(exc):
                raise StoreError(f"lease {self.key}: {exc}") from exc

    def fence(self) -> dict[str, Any]:
        """A TransactWriteItems ConditionCheck: the lease is still ours."""
        return {
            "ConditionCheck": {
                "TableName": self.table,
                "Key": {"lease_key": {"S": self.key}},
                "ConditionExpression": "#o = :me",
                "ExpressionAttributeNames": {"#o": "owner"},
                "ExpressionAttributeValues": {":me": {"S": self.owner}},
            }
        }


def read_lease(client: DynamoDBClient, table: str, stream_arn: str) -> dict[str, Any] | None:
    """The consumer lease item as plain data (None if no consumer ever ran)."""
    try:
        response = client.get_item(
            TableName=table, Key={"lease_key": {"S": consumer_key(stream_arn)}}, ConsistentRead=True
        )
    except (ClientError, BotoCoreError) as exc:
        raise StoreError(f"leases table {table}: {exc}") from exc
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


class Checkpoints:
    def __init__(self, client: DynamoDBClient, table: str, stream_arn: str) -> None:
        self._ddb = client
        self.table = table
        self.stream_arn = stream_arn

    def load(self, shard_ids: list[str]) -> dict[str, Checkpoint]:
        found: dict[str, Checkpoint] = {}
        by_key = {checkpoint_key(self.stream_arn, s): s for s in shard_ids}
        pending = list(by_key)
        while pending:
            chunk, pending = pending[:100], pending[100:]
            request: Any = {
                self.table: {
                    "Keys": [{"lease_key": {"S": k}} for k in chunk],
                    "ConsistentRead": True,
                }
            }
            while request:
                try:
                    response = self._ddb.batch_get_item(RequestItems=request)
                except (ClientError, BotoCoreError) as exc:
                    raise StoreError(f"checkpoints: {exc}") from exc
                for raw in response.get("Responses", {}).get(self.table, []):
                    item = {k: _de.deserialize(v) for k, v in raw.items()}
                    shard = by_key.get(str(item["lease_key"]))
                    if shard is not None:
                        seq, replay = item.get("sequence"), item.get("replay_at")
                        found[shard] = Checkpoint(
                            str(seq) if seq else None,
                            bool(item.get("finished", False)),
                            str(replay) if replay else None,
                        )
                request = response.get("UnprocessedKeys") or {}
        return found

    def load_pending(self) -> PendingEmission | None:
        """The emission a consumer began and did not finish (None: there is none)."""
        try:
            response = self._ddb.get_item(
                TableName=self.table,
                Key={"lease_key": {"S": pending_key(self.stream_arn)}},
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"pending emission: {exc}") from exc
        raw = response.get("Item")
        if not raw:
            return None
        item = {k: plain(_de.deserialize(v)) for k, v in raw.items()}
        positions = {
            str(shard): Checkpoint(
                str(cp["sequence"]) if cp.get("sequence") else None,
                bool(cp.get("finished")),
                str(cp["replay_at"]) if cp.get("replay_at") else None,
            )
            for shard, cp in (item.get("positions") or {}).items()
        }
        return PendingEmission(str(item["name"]), positions)

    def begin(self, pending: PendingEmission, lease: ConsumerLease) -> None:
        """Phase one: record the emission before its rows are written (replacing any other)."""
        item: dict[str, Any] = {
            "lease_key": {"S": pending_key(self.stream_arn)},
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

    def drop_pending(self, lease: ConsumerLease) -> None:
        """Forget a begun emission whose rows were never stored."""
        self._transact([lease.fence(), self._settled()], lease)

    def save(
        self, updates: Mapping[str, Checkpoint], lease: ConsumerLease, *, settle: bool = False
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
                    "lease_key": {"S": checkpoint_key(self.stream_arn, shard)},
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
        return {
            "Delete": {
                "TableName": self.table,
                "Key": {"lease_key": {"S": pending_key(self.stream_arn)}},
            }
        }

    def _transact(self, writes: list[Any], lease: ConsumerLease) -> None:
        try:
            self._ddb.transact_write_items(TransactItems=writes)
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or []
            first = reasons[0].get("Code") if reasons else None
            if error_code(exc) == "TransactionCanceledException" and first in (
                "ConditionalCheckFailed",
                None,
            ):
                raise LeaseLostError(f"{lease.key} is held by another consumer") from exc
            raise StoreError(f"checkpoints: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"checkpoints: {exc}") from exc

"""An in-memory DynamoDB client, for the cache store's logic tests and its contract suite.

A twin at the level of the client rather than of `CacheStore`: the real `CacheStore` (its
conditions, transactions and index writes) runs unchanged on top of it, so a test on memory
exercises the same code as one on moto (`CacheStore(MemoryDynamoDB(...), table, ...)`).

What it models: the operations the cache store calls (GetItem, PutItem, UpdateItem,
DeleteItem, Query on the table and its GSIs, Scan, BatchGetItem, TransactWriteItems) with
conditional writes (`ReturnValuesOnConditionCheckFailure`), all-or-nothing transactions with
their `CancellationReasons`, GSIs as sorted views built from the table's CreateTable spec
(sparse, projected, range keys in UTF-8 byte order), Limit/ExclusiveStartKey/
ScanIndexForward/Select=COUNT, and filters applied after Limit. Expressions: `expressions.py`.

Tables may have a range key (the history table: numbers sort by value) and take
BatchWriteItem. Given a `MemoryStreamStore` (`stream.py`), a table created with a
StreamSpecification feeds it every committed change as DynamoDB Streams records it: one record
per item changed (a transaction's items each), none for a write that changed nothing.
`expire` is DynamoDB's TTL deleter, run when a test says so.

What it does not: GSIs are strongly consistent here (eventually consistent on AWS), no 1 MB
page or 400 KB item limits, no throughput/throttling, unprocessed batch items or transaction
conflicts, TTL deletes only through `expire`, and the last page of a query that hit Limit
exactly still returns a LastEvaluatedKey (as DynamoDB does; moto does not).
"""

from __future__ import annotations

import copy
import re
import threading
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from engine.store.abc import CacheTable
from engine.store.memory.expressions import Item, apply_update, matches, required_value

if TYPE_CHECKING:
    from engine.store.memory.stream import MemoryStreamStore


def _error(code: str, message: str, op: str, **extra: Any) -> ClientError:
    response: dict[str, Any] = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": 400},
        **extra,
    }
    return ClientError(response, op)  # type: ignore[arg-type]


_EXPRESSIONS = (
    "ConditionExpression",
    "UpdateExpression",
    "KeyConditionExpression",
    "FilterExpression",
    "ProjectionExpression",
)
_TOKEN = re.compile(r"[#:][A-Za-z0-9_]+")


def _validate(op: str, params: dict[str, Any]) -> None:
    """DynamoDB refuses a request whose expressions use an undefined `#name` or `:value`, or
    that defines one no expression uses (a mistake the real service catches, so this does)."""
    used = {t for e in _EXPRESSIONS for t in _TOKEN.findall(params.get(e) or "")}
    for kind, given in (
        ("ExpressionAttributeNames", params.get("ExpressionAttributeNames") or {}),
        ("ExpressionAttributeValues", params.get("ExpressionAttributeValues") or {}),
    ):
        mark = "#" if kind.endswith("Names") else ":"
        unused = sorted(k for k in given if k not in used)
        if unused:
            keys = ", ".join(unused)
            raise _error(
                "ValidationException",
                f"Value provided in {kind} unused in expressions: keys: {{{keys}}}",
                op,
            )
        undefined = sorted(t for t in used if t.startswith(mark) and t not in given)
        if undefined:
            raise _error(
                "ValidationException",
                f"{kind} used in expression is not defined: {undefined[0]}",
                op,
            )


def _key_bytes(value: dict[str, Any]) -> tuple[int, Any]:
    """DynamoDB's order of key values: strings and binary by bytes, numbers by value."""
    if "S" in value:
        return (0, value["S"].encode())
    if "N" in value:
        return (1, Decimal(value["N"]))
    return (2, bytes(value["B"]))


class _Table:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.name = spec["TableName"]
        schema = {k["KeyType"]: k["AttributeName"] for k in spec["KeySchema"]}
        self.hash: str = schema["HASH"]
        self.range: str | None = schema.get("RANGE")
        stream = spec.get("StreamSpecification") or {}
        self.stream_view: str | None = (
            stream.get("StreamViewType") if stream.get("StreamEnabled") else None
        )
        self.indexes: dict[str, tuple[str, str | None, dict[str, Any]]] = {}
        for gsi in spec.get("GlobalSecondaryIndexes", []):
            schema = {k["KeyType"]: k["AttributeName"] for k in gsi["KeySchema"]}
            self.indexes[gsi["IndexName"]] = (
                schema["HASH"],
                schema.get("RANGE"),
                gsi["Projection"],
            )
        self.items: dict[Any, Item] = {}

    @property
    def key_names(self) -> tuple[str, ...]:
        return (self.hash, self.range) if self.range else (self.hash,)

    def keys(self, item: Item) -> Item:
        """The item's key attributes (what a stream record's `Keys` holds)."""
        return {name: copy.deepcopy(item[name]) for name in self.key_names}

    def key_of(self, key: Item) -> Any:
        if set(key) != set(self.key_names):
            raise _error("ValidationException", "The provided key does not match", "Key")
        return tuple(_key_bytes(key[name]) for name in self.key_names)

    def project(self, item: Item, index: str | None) -> Item:
        if index is None:
            return copy.deepcopy(item)
        hash_key, range_key, projection = self.indexes[index]
        if projection["ProjectionType"] == "ALL":
            return copy.deepcopy(item)
        keep = {*self.key_names, hash_key, range_key, *projection.get("NonKeyAttributes", [])}
        return {k: copy.deepcopy(v) for k, v in item.items() if k in keep}


class MemoryDynamoDB:
    """The DynamoDB client operations the cache store uses, on tables held in memory.
    Thread-safe: one lock makes every call (and every transaction) atomic."""

    def __init__(self, *specs: dict[str, Any], streams: MemoryStreamStore | None = None) -> None:
        self._lock = threading.RLock()
        self._tables: dict[str, _Table] = {}
        self.streams = streams
        for spec in specs:
            self.create_table(**spec)

    def create_table(self, **spec: Any) -> dict[str, Any]:
        with self._lock:
            table = self._tables[spec["TableName"]] = _Table(spec)
            if self.streams is not None and table.stream_view is not None:
                self.streams.enable(table.name, table.stream_view)
        return {"TableDescription": {"TableName": spec["TableName"], "TableStatus": "ACTIVE"}}

    def _table(self, name: str) -> _Table:
        if name not in self._tables:
            raise _error("ResourceNotFoundException", f"table {name} not found", "DescribeTable")
        return self._tables[name]

    # -- single-item operations ----------------------------------------------------------

    def get_item(self, **params: Any) -> dict[str, Any]:
        with self._lock:
            table = self._table(params["TableName"])
            item = table.items.get(table.key_of(params["Key"]))
            return {"Item": copy.deepcopy(item)} if item is not None else {}

    def put_item(self, **params: Any) -> dict[str, Any]:
        _validate("PutItem", params)
        with self._lock:
            table = self._table(params["TableName"])
            item = params["Item"]
            pk = table.key_of(table.keys(item))
            old = self._check("PutItem", table, pk, params)
            self._write(table, pk, copy.deepcopy(item))
            return _returned(params, old, item, set(item))

    def update_item(self, **params: Any) -> dict[str, Any]:
        _validate("UpdateItem", params)
        with self._lock:
            table = self._table(params["TableName"])
            pk = table.key_of(params["Key"])
            old = self._check("UpdateItem", table, pk, params)
            new, updated = self._updated(table, old, params)
            self._write(table, pk, new)
            return _returned(params, old, new, updated)

    def delete_item(self, **params: Any) -> dict[str, Any]:
        _validate("DeleteItem", params)
        with self._lock:
            table = self._table(params["TableName"])
            pk = table.key_of(params["Key"])
            old = self._check("DeleteItem", table, pk, params)
            self._write(table, pk, None)
            return _returned(params, old, None, set())

    def _write(self, table: _Table, pk: Any, new: Item | None, *, ttl: bool = False) -> None:
        """Store (or remove) one item, and tell the table's stream what changed."""
        old = table.items.pop(pk, None)
        if new is not None:
            table.items[pk] = new
        if self.streams is not None and table.stream_view is not None and old != new:
            self.streams.record(table.name, table.keys(new or old or {}), old, new, ttl=ttl)

    def expire(self, table_name: str, attribute: str, now: float) -> int:
        """DynamoDB's TTL: remove the items whose `attribute` (epoch seconds) is before `now`;
        their REMOVE records carry the TTL service's identity. Returns how many."""
        with self._lock:
            table = self._table(table_name)
            due = [
                pk
                for pk, item in table.items.items()
                if "N" in item.get(attribute, {}) and Decimal(item[attribute]["N"]) < Decimal(now)
            ]
            for pk in due:
                self._write(table, pk, None, ttl=True)
            return len(due)

    def _check(self, op: str, table: _Table, pk: str, params: dict[str, Any]) -> Item | None:
        """The current item, if the operation's condition holds; else the op's refusal."""
        old = table.items.get(pk)
        if self._holds(old, params):
            return old
        extra = {}
        if params.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and old is not None:
            extra["Item"] = copy.deepcopy(old)
        raise _error(
            "ConditionalCheckFailedException", "The conditional request failed", op, **extra
        )

    @staticmethod
    def _holds(old: Item | None, params: dict[str, Any]) -> bool:
        return matches(
            params.get("ConditionExpression"),
            old,
            params.get("ExpressionAttributeNames"),
            params.get("ExpressionAttributeValues"),
        )

    @staticmethod
    def _updated(table: _Table, old: Item | None, params: dict[str, Any]) -> tuple[Item, set[str]]:
        base = copy.deepcopy(old) if old is not None else copy.deepcopy(params["Key"])
        return apply_update(
            params["UpdateExpression"],
            base,
            params.get("ExpressionAttributeNames"),
            params.get("ExpressionAttributeValues"),
        )

    # -- reads of many items -------------------------------------------------------------

    def query(self, **params: Any) -> dict[str, Any]:
        _validate("Query", params)
        with self._lock:
            table = self._table(params["TableName"])
            index = params.get("IndexName")
            if index is None:
                hash_key, range_key = table.hash, None
            else:
                hash_key, range_key, _ = table.indexes[index]
            names = params.get("ExpressionAttributeNames")
            values = params.get("ExpressionAttributeValues")
            condition = params["KeyConditionExpression"]
            partition = required_value(condition, hash_key, names, values)
            view = [
                item
                for item in table.items.values()
                if hash_key in item and (range_key is None or range_key in item)
                if partition is None or item[hash_key] == partition
                if matches(condition, item, names, values)
            ]
            if index is None:
                range_key = table.range
            ordered = _ordered(view, table.hash, range_key, params.get("ScanIndexForward", True))
            return _page(table, index, ordered, table.hash, range_key, params)

    def scan(self, **params: Any) -> dict[str, Any]:
        _validate("Scan", params)
        with self._lock:
            table = self._table(params["TableName"])
            ordered = _ordered(list(table.items.values()), table.hash, table.range, True)
            return _page(table, None, ordered, table.hash, table.range, params)

    def batch_get_item(self, **params: Any) -> dict[str, Any]:
        responses: dict[str, list[Item]] = {}
        with self._lock:
            for name, request in params["RequestItems"].items():
                table = self._table(name)
                found = (table.items.get(table.key_of(k)) for k in request["Keys"])
                responses[name] = [copy.deepcopy(i) for i in found if i is not None]
        return {"Responses": responses, "UnprocessedKeys": {}}

    def batch_write_item(self, **params: Any) -> dict[str, Any]:
        """Puts and deletes without conditions; a key twice in one request is refused whole."""
        with self._lock:
            plan: list[tuple[_Table, Any, Item | None]] = []
            for name, requests in params["RequestItems"].items():
                table = self._table(name)
                for request in requests:
                    if "PutRequest" in request:
                        item = request["PutRequest"]["Item"]
                        plan.append((table, table.key_of(table.keys(item)), item))
                    else:
                        key = request["DeleteRequest"]["Key"]
                        plan.append((table, table.key_of(key), None))
            targets = [(t.name, pk) for t, pk, _item in plan]
            if len(set(targets)) != len(targets):
                raise _error(
                    "ValidationException",
                    "Provided list of item keys contains duplicates",
                    "BatchWriteItem",
                )
            for table, pk, item in plan:
                self._write(table, pk, copy.deepcopy(item) if item is not None else None)
        return {"UnprocessedItems": {}}

    # -- transactions --------------------------------------------------------------------

    def transact_write_items(self, **request: Any) -> Any:
        """All or nothing: every condition is checked against the state before any write."""
        with self._lock:
            plan: list[tuple[str, _Table, str, dict[str, Any]]] = []
            for entry in request["TransactItems"]:
                ((kind, params),) = entry.items()
                _validate("TransactWriteItems", params)
                table = self._table(params["TableName"])
                key = params["Item"] if kind == "Put" else params["Key"]
                plan.append((kind, table, table.key_of(table.keys(key)), params))
            targets = [(t.name, pk) for _kind, t, pk, _params in plan]
            if len(set(targets)) != len(targets):
                raise _error(
                    "ValidationException",
                    "Transaction request cannot include multiple operations on one item",
                    "TransactWriteItems",
                )
            reasons: list[dict[str, Any]] = []
            for _kind, table, pk, params in plan:
                current = table.items.get(pk)
                if self._holds(current, params):
                    reasons.append({"Code": "None"})
                    continue
                reason: dict[str, Any] = {"Code": "ConditionalCheckFailed", "Message": "failed"}
                if params.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                    reason["Item"] = copy.deepcopy(current)
                reasons.append(reason)
            if any(r["Code"] != "None" for r in reasons):
                raise _error(
                    "TransactionCanceledException",
                    "Transaction cancelled, please refer cancellation reasons for specific"
                    f" reasons [{', '.join(r['Code'] for r in reasons)}]",
                    "TransactWriteItems",
                    CancellationReasons=reasons,
                )
            for kind, table, pk, params in plan:
                if kind == "Put":
                    self._write(table, pk, copy.deepcopy(params["Item"]))
                elif kind == "Update":
                    self._write(table, pk, self._updated(table, table.items.get(pk), params)[0])
                elif kind == "Delete":
                    self._write(table, pk, None)
            return {}


def _returned(
    params: dict[str, Any], old: Item | None, new: Item | None, updated: set[str]
) -> dict[str, Any]:
    wanted = params.get("ReturnValues", "NONE")
    if wanted == "ALL_OLD" and old:
        return {"Attributes": copy.deepcopy(old)}
    if wanted == "ALL_NEW" and new:
        return {"Attributes": copy.deepcopy(new)}
    if wanted == "UPDATED_NEW" and new:
        return {"Attributes": {k: copy.deepcopy(new[k]) for k in updated if k in new}}
    if wanted == "UPDATED_OLD" and old:
        return {"Attributes": {k: copy.deepcopy(old[k]) for k in updated if k in old}}
    return {}


def _sort_key(item: Item, table_hash: str, range_key: str | None) -> tuple[Any, ...]:
    head = (_key_bytes(item[range_key]),) if range_key else ()
    return (*head, _key_bytes(item[table_hash]))


def _ordered(items: list[Item], table_hash: str, range_key: str | None, forward: bool) -> Any:
    return sorted(items, key=lambda i: _sort_key(i, table_hash, range_key), reverse=not forward)


def _page(
    table: _Table,
    index: str | None,
    ordered: list[Item],
    table_hash: str,
    range_key: str | None,
    params: dict[str, Any],
) -> dict[str, Any]:
    """One page: resume after ExclusiveStartKey, stop at Limit (items read, before the
    filter), then filter, then project or count."""
    start = params.get("ExclusiveStartKey")
    if start:
        mark = _sort_key(start, table_hash, range_key)
        forward = params.get("ScanIndexForward", True)
        ordered = [
            i for i in ordered if (_sort_key(i, table_hash, range_key) > mark) == bool(forward)
        ]
        ordered = [i for i in ordered if _sort_key(i, table_hash, range_key) != mark]
    limit = params.get("Limit")
    read = ordered[:limit] if limit else ordered
    names = params.get("ExpressionAttributeNames")
    values = params.get("ExpressionAttributeValues")
    kept = [i for i in read if matches(params.get("FilterExpression"), i, names, values)]
    response: dict[str, Any] = {"Count": len(kept), "ScannedCount": len(read)}
    if params.get("Select") != "COUNT":
        response["Items"] = [table.project(i, index) for i in kept]
    if limit and len(read) == limit and read:
        last = read[-1]
        key_attrs = {*table.key_names, *(a for a in (range_key, _hash_of(table, index)) if a)}
        response["LastEvaluatedKey"] = {k: copy.deepcopy(last[k]) for k in key_attrs}
    if params.get("ReturnConsumedCapacity", "NONE") != "NONE":
        response["ConsumedCapacity"] = {"TableName": table.name, "CapacityUnits": len(read) / 2}
    return response


def _hash_of(table: _Table, index: str | None) -> str | None:
    return table.indexes[index][0] if index else None


def _conforms(client: MemoryDynamoDB) -> CacheTable:
    return client  # mypy checks the twin against the protocol here

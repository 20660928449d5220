"""The DynamoDB cache table: every conditional write, in one place (the item itself, its
attributes and builders: engine/store/item.py).

An item holds the committed image (what readers and queries see) and, while a write is in
flight, `p_*` attributes beside it (outside every GSI key). Commit and rollback are single
conditional updates on `p_tx`, so a reader never sees an in-flight write.

Customer index: one adjacency item per (document, customer) under the reserved pk prefix
(`keys.index_pk`), keyed for the customer GSI by customer#type#month and sorted by time. Every
write of a committed image puts the entries of its customers and deletes those of the customers
it dropped, in one TransactWriteItems with the image, so the index never disagrees with a
committed image. The intent copies the committed customers (`p_cust`), so the commit knows
which entries to delete without reading.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from engine import keys
from engine.breaker import CircuitBreaker
from engine.exceptions import CacheUnavailableError, StoreError
from engine.ratelimit import TokenBucket
from engine.store.base import ConditionFailed, ErrorMap, StoreCall
from engine.store.item import (
    GSI_KEYS,
    PENDING,
    CacheItem,
    IndexEntry,
    deserialize,
    from_index,
    index_entries,
    now_ms,
    serialize,
    to_ms,
    tombstone_attributes,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

T = TypeVar("T")
CACHE_ERRORS = ErrorMap("DynamoDB", StoreError, CacheUnavailableError, conditional=True)


class CacheStore:
    """All DynamoDB access of the cache table. Every call is rate-limited and breaker-guarded."""

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        limiter: TokenBucket,
        breaker: CircuitBreaker,
    ) -> None:
        self._ddb = client
        self.table = table
        self._limiter = limiter
        self.breaker = breaker
        self._seam = StoreCall(CACHE_ERRORS, breaker, limiter)

    # -- plumbing ---------------------------------------------------------------------------

    def _call(self, op: str, fn: Callable[..., T], *, table: bool = True, **kwargs: Any) -> T:
        if table:
            kwargs["TableName"] = self.table
        return self._seam(op, fn, **kwargs)

    # -- reads ------------------------------------------------------------------------------

    def get(self, type_name: str, doc_id: str) -> CacheItem | None:
        item = self.get_item(type_name, doc_id)
        return CacheItem.from_item(item) if item else None

    def get_item(self, type_name: str, doc_id: str) -> dict[str, Any] | None:
        """The raw item, intent attributes included (for the sync rules)."""
        response = self._call(
            "GetItem",
            self._ddb.get_item,
            Key={"pk": {"S": keys.cache_pk(type_name, doc_id)}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return deserialize(item) if item else None

    def query_page(
        self,
        index: str,
        partition: str,
        low: str,
        high: str,
        *,
        limit: int,
        now: datetime,
        status: str | None = None,
        start_key: dict[str, Any] | None = None,
    ) -> tuple[list[CacheItem | IndexEntry], dict[str, Any] | None]:
        """One page of an index, newest first, never expired (TTL deletes lazily): documents'
        items, or customer-index entries. `status`: a filter (the customer index holds every
        status of a customer)."""
        kwargs = _range_query(index, partition, low, high, now, status)
        kwargs.update(ScanIndexForward=False, Limit=limit)
        if start_key:
            kwargs["ExclusiveStartKey"] = start_key
        response = self._call("Query", self._ddb.query, **kwargs)
        items = [from_index(deserialize(i)) for i in response.get("Items", [])]
        return items, response.get("LastEvaluatedKey")

    def count(
        self,
        index: str,
        partition: str,
        low: str,
        high: str,
        *,
        now: datetime,
        status: str | None = None,
    ) -> int:
        """How many unexpired entries one partition holds in the range (Select=COUNT: items
        are read, and billed, but not returned; one call per 1 MB read)."""
        kwargs = _range_query(index, partition, low, high, now, status)
        kwargs["Select"] = "COUNT"
        total = 0
        while True:
            response = self._call("Query", self._ddb.query, **kwargs)
            total += int(response.get("Count", 0))
            start = response.get("LastEvaluatedKey")
            if not start:
                return total
            kwargs["ExclusiveStartKey"] = start

    def holds_any(self, index: str, partition: str) -> bool:
        """Whether one index partition holds any item at all (one Query, Limit=1, COUNT)."""
        response = self._call(
            "Query",
            self._ddb.query,
            IndexName=index,
            KeyConditionExpression="#p = :p",
            ExpressionAttributeNames={"#p": GSI_KEYS[index][0]},
            ExpressionAttributeValues={":p": {"S": partition}},
            Select="COUNT",
            Limit=1,
        )
        return int(response.get("Count", 0)) > 0

    def batch_get(self, pks: list[str]) -> dict[str, CacheItem]:
        """Items by pk (strongly consistent), 100 keys per BatchGetItem, unprocessed retried."""
        found: dict[str, CacheItem] = {}
        unique = list(dict.fromkeys(pks))
        for start in range(0, len(unique), 100):
            request: dict[str, Any] = {
                self.table: {
                    "Keys": [{"pk": {"S": pk}} for pk in unique[start : start + 100]],
                    "ConsistentRead": True,
                }
            }
            while request:
                response = self._call(
                    "BatchGetItem", self._ddb.batch_get_item, table=False, RequestItems=request
                )
                for raw in response.get("Responses", {}).get(self.table, []):
                    item = CacheItem.from_wire(raw)
                    found[item.pk] = item
                request = dict(response.get("UnprocessedKeys") or {})
        return found

    def key_index(self, partition: str) -> Iterator[CacheItem | IndexEntry]:
        """Live entries of one key-index partition, in S3 key order, page by page (each
        document's customer-index entries right after it)."""
        items = self._items(
            "Query",
            self._ddb.query,
            IndexName=keys.KEY_INDEX,
            KeyConditionExpression="kpk = :p",
            ExpressionAttributeValues={":p": {"S": partition}},
        )
        return (from_index(item) for item in items)

    def scan_all(self) -> Iterator[dict[str, Any]]:
        """Every item (tests and small tables only)."""
        return self._items("Scan", self._ddb.scan, ConsistentRead=True)

    def _items(self, op: str, fn: Callable[..., Any], **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item a Query or Scan returns, page after page (one call a page, lazily)."""
        while True:
            response = self._call(op, fn, **kwargs)
            for item in response.get("Items", []):
                yield deserialize(item)
            start = response.get("LastEvaluatedKey")
            if not start:
                return
            kwargs["ExclusiveStartKey"] = start

    # -- the write pipeline's three steps ---------------------------------------------------

    def begin(
        self,
        type_name: str,
        doc_id: str,
        *,
        tx: str,
        etag: str,
        op: str,
        stale_before: datetime,
        expected_version: int | None,
    ) -> dict[str, Any]:
        """Step 1: mark the write in flight; returns the intent's attributes (`p_version`, and
        `p_cust`: the committed image's customers, whose index entries the commit replaces).

        Refused (ConditionFailed with the current item) if the same content is already
        committed, if another fresh write is in flight, or if `expected_version` differs.
        """
        condition = (
            "(attribute_not_exists(p_tx) OR p_at < :stale OR p_etag = :etag)"
            " AND NOT (#st = :live AND etag = :etag)"
        )
        values: dict[str, Any] = {
            ":tx": tx,
            ":etag": etag,
            ":op": op,
            ":at": now_ms(),
            ":stale": to_ms(stale_before),
            ":live": "live",
            ":zero": 0,
            ":one": 1,
            ":none": [],
        }
        if expected_version is not None:
            if expected_version == 0:
                condition += " AND (attribute_not_exists(version) OR #st = :deleted)"
                values[":deleted"] = "deleted"
            else:
                condition += " AND version = :ev AND #st = :live"
                values[":ev"] = expected_version
        response = self._call(
            "UpdateItem",
            self._ddb.update_item,
            Key={"pk": {"S": keys.cache_pk(type_name, doc_id)}},
            UpdateExpression=(
                "SET p_tx = :tx, p_etag = :etag, p_op = :op, p_at = :at,"
                " p_version = if_not_exists(version, :zero) + :one,"
                " p_cust = if_not_exists(customers, :none)"
            ),
            ConditionExpression=condition,
            ExpressionAttributeNames={"#st": "state"},
            ExpressionAttributeValues=serialize(values),
            ReturnValues="UPDATED_NEW",  # only the p_* attributes, never the body
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        return deserialize(response.get("Attributes", {}))

    def commit_live(
        self,
        type_name: str,
        doc_id: str,
        tx: str,
        attrs: dict[str, Any],
        version: int,
        prev_customers: list[str],
    ) -> None:
        """Step 3: the pending write becomes the committed image, at the intent's `p_version`.

        One conditional PutItem of the whole image (`attrs` is complete: see
        `live_attributes`) rather than an update: it drops the intent and the previous image
        in one write, and a 20-attribute update expression costs moto twice the time of a put.
        With customers (now or before: `prev_customers`, the intent's `p_cust`), a transaction
        with their index entries.
        """
        item = {"pk": keys.cache_pk(type_name, doc_id), **attrs, "version": version}
        self._write_image(
            "Put",
            {
                "Item": serialize(item),
                "ConditionExpression": "p_tx = :tx AND p_version = :pv",
                "ExpressionAttributeValues": serialize({":tx": tx, ":pv": version}),
            },
            type_name,
            doc_id,
            attrs,
            prev_customers,
        )

    def commit_deleted(
        self,
        type_name: str,
        doc_id: str,
        tx: str,
        deleted_at: datetime,
        ttl_days: int,
        *,
        key: str,
        prev_customers: list[str],
        source: str = "write",
        actor: str | None = None,
    ) -> None:
        """Step 3 of a delete: a tombstone, out of every index, with a TTL, the index entries
        of `prev_customers` deleted in the same transaction, and who deleted it, for history
        (None removes an earlier writer's)."""
        attrs = tombstone_attributes(key, deleted_at, source=source, ttl_days=ttl_days)
        attrs["actor"] = actor
        sets = {k: v for k, v in attrs.items() if v is not None}
        removes = [k for k, v in attrs.items() if v is None]
        update, names, values = _update_expression(sets, [*removes, *PENDING])
        values[":tx"] = tx
        self._write_image(
            "Update",
            {
                "Key": {"pk": {"S": keys.cache_pk(type_name, doc_id)}},
                "UpdateExpression": update.replace("SET ", "SET version = p_version, ", 1),
                "ConditionExpression": "p_tx = :tx",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": serialize(values),
            },
            type_name,
            doc_id,
            attrs,
            prev_customers,
        )

    def replace(
        self,
        type_name: str,
        doc_id: str,
        attrs: dict[str, Any],
        *,
        version_seen: int | None,
        prev_customers: list[str],
    ) -> None:
        """`sync`'s fast path, for a caller that read the entry and found it plainly older (or
        absent): the whole image in one PutItem, only if the entry is still at `version_seen`
        with no intent (or still absent). Refused (ConditionFailed) otherwise; the caller then
        falls back to `sync`. On moto a put costs a fifth of a 20-clause update expression."""
        item = {
            "pk": keys.cache_pk(type_name, doc_id),
            **{k: v for k, v in attrs.items() if v is not None},
            "version": (version_seen or 0) + 1,
        }
        if version_seen is None:
            conditions: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            conditions = {
                "ConditionExpression": "version = :v AND attribute_not_exists(p_tx)",
                "ExpressionAttributeValues": serialize({":v": version_seen}),
            }
        self._write_image(
            "Put",
            {"Item": serialize(item), **conditions},
            type_name,
            doc_id,
            attrs,
            prev_customers,
        )

    def _write_image(
        self,
        kind: str,
        params: dict[str, Any],
        type_name: str,
        doc_id: str,
        image: dict[str, Any],
        prev_customers: list[str],
    ) -> None:
        """One conditional write of a committed image, with its customer-index entries put and
        the dropped customers' entries deleted in the same transaction (a plain PutItem or
        UpdateItem when there are none: half the write units)."""
        index = self._index_writes(type_name, doc_id, image, prev_customers)
        params = {**params, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
        if not index:
            if kind == "Put":
                self._call("PutItem", self._ddb.put_item, **params)
            else:
                self._call("UpdateItem", self._ddb.update_item, **params)
            return
        items: list[dict[str, Any]] = [{kind: {"TableName": self.table, **params}}, *index]
        self._call(
            "TransactWriteItems", self._ddb.transact_write_items, table=False, TransactItems=items
        )

    def reindex(self, type_name: str, doc_id: str, found: list[str]) -> int:
        """Make the customer index of one document exact (the reconciler's index repair):
        read the entry, put its customers' entries, delete those of `found` it does not
        name, conditional on the entry being unchanged. Returns the entries written."""
        item = self.get_item(type_name, doc_id)
        if item is not None and item.get("p_tx"):
            return 0  # a write is in flight: its commit writes the index
        index = self._index_writes(type_name, doc_id, item or {}, found)
        if not index:
            return 0
        check: dict[str, Any] = {
            "TableName": self.table,
            "Key": {"pk": {"S": keys.cache_pk(type_name, doc_id)}},
        }
        if item is None:
            check["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            check["ConditionExpression"] = "version = :v AND attribute_not_exists(p_tx)"
            check["ExpressionAttributeValues"] = serialize({":v": item.get("version", 0)})
        items: list[dict[str, Any]] = [{"ConditionCheck": check}, *index]
        self._call(
            "TransactWriteItems", self._ddb.transact_write_items, table=False, TransactItems=items
        )
        return len(index)

    def _index_writes(
        self, type_name: str, doc_id: str, image: dict[str, Any], previous: list[str]
    ) -> list[dict[str, Any]]:
        """The transaction items that make a document's customer index match `image`: a put
        per customer it names, a delete per customer of `previous` it no longer names."""
        entries = index_entries(type_name, doc_id, image)
        keep = {e["customer"] for e in entries}
        dropped = [c for c in dict.fromkeys(previous) if c not in keep]
        return [{"Put": {"TableName": self.table, "Item": serialize(e)}} for e in entries] + [
            {
                "Delete": {
                    "TableName": self.table,
                    "Key": {"pk": {"S": keys.index_pk(type_name, doc_id, c)}},
                }
            }
            for c in dropped
        ]

    def rollback(self, type_name: str, doc_id: str, tx: str) -> None:
        """Undo step 1, only if the pending write is still ours: restore the committed image
        (drop the intent), or remove the item if nothing was committed before."""
        key = {"pk": {"S": keys.cache_pk(type_name, doc_id)}}
        try:
            self._call(
                "UpdateItem",
                self._ddb.update_item,
                Key=key,
                UpdateExpression="REMOVE " + ", ".join(PENDING),
                ConditionExpression="p_tx = :tx AND attribute_exists(#st)",
                ExpressionAttributeNames={"#st": "state"},
                ExpressionAttributeValues={":tx": {"S": tx}},
            )
        except ConditionFailed:
            self._call(
                "DeleteItem",
                self._ddb.delete_item,
                Key=key,
                ConditionExpression="p_tx = :tx AND attribute_not_exists(#st)",
                ExpressionAttributeNames={"#st": "state"},
                ExpressionAttributeValues={":tx": {"S": tx}},
            )

    # -- fills that must never go backwards (events, backfill, repair) -------------------------

    def sync(
        self,
        type_name: str,
        doc_id: str,
        attrs: dict[str, Any],
        *,
        stale_before: datetime,
        prev_customers: list[str],
        expect: CacheItem | None = None,
    ) -> None:
        """Write a committed image (live or tombstone) and drop any stale intent.

        `prev_customers`: the customers the entry is believed to list now (exactly, as stored);
        the write is conditional on it, so the index entries it deletes are exactly the dropped
        ones (refused, with the current item, if the belief is wrong).

        Refused (ConditionFailed with the current item) while another write's intent is fresh,
        and, by default, unless the entry's recorded S3 position (`s3_last_modified`) is older.
        With `expect` (the entry as the caller saw it), a compare-and-swap instead: only if its
        `state`, `etag` and `s3_last_modified` are still exactly those (used after re-checking
        S3).
        """
        sets = {k: v for k, v in attrs.items() if v is not None}
        removes = [k for k, v in attrs.items() if v is None and k != "pk"]
        update, names, values = _update_expression(sets, [*removes, *PENDING])
        values.update({":zero": 0, ":one": 1, ":stale": to_ms(stale_before)})
        names["#lm"] = "s3_last_modified"
        no_fresh_intent = "(attribute_not_exists(p_tx) OR p_at < :stale)"
        if expect is None:
            values[":lm"] = attrs["s3_last_modified"]
            condition = (
                f"attribute_not_exists(pk) OR ({no_fresh_intent} AND"
                " (attribute_not_exists(#lm) OR #lm < :lm))"
            )
        elif expect.state is None:  # seen absent: the swap is "still absent"
            condition = (
                f"attribute_not_exists(pk) AND {no_fresh_intent} AND attribute_not_exists(#lm)"
            )
        else:
            names.update({"#st": "state", "#et": "etag"})
            values.update({":xst": expect.state, ":xlm": expect.s3_last_modified_ms})
            condition = f"{no_fresh_intent} AND #st = :xst AND #lm = :xlm"
            if expect.etag is None:
                condition += " AND attribute_not_exists(#et)"
            else:
                values[":xet"] = expect.etag
                condition += " AND #et = :xet"
        names["#cu"] = "customers"
        if prev_customers:
            values[":pcu"] = prev_customers
            condition = f"({condition}) AND #cu = :pcu"
        else:
            condition = f"({condition}) AND (attribute_not_exists(#cu) OR size(#cu) = :zero)"
        self._write_image(
            "Update",
            {
                "Key": {"pk": {"S": keys.cache_pk(type_name, doc_id)}},
                "UpdateExpression": update.replace(
                    "SET ", "SET version = if_not_exists(version, :zero) + :one, ", 1
                ),
                "ConditionExpression": condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": serialize(values),
            },
            type_name,
            doc_id,
            attrs,
            prev_customers,
        )

    # -- the reserved read-metrics items (engine/readmetrics) -------------------------------

    def add_read_metrics(self, update: dict[str, Any]) -> bool:
        """One flush's UpdateItem (built by engine/readmetrics/item.py), through the limiter
        and the breaker; False when its condition refused it (that flush had landed)."""
        try:
            self._call("UpdateItem", self._ddb.update_item, **update)
        except ConditionFailed:
            return False
        return True

    def drop(self, type_name: str, doc_id: str) -> None:
        """Remove a cache entry outright, unconditionally (the demo plants drift with it)."""
        self._call(
            "DeleteItem", self._ddb.delete_item, Key={"pk": {"S": keys.cache_pk(type_name, doc_id)}}
        )


def _range_query(
    index: str,
    partition: str,
    low: str,
    high: str,
    now: datetime,
    status: str | None,
) -> dict[str, Any]:
    hash_key, range_key = GSI_KEYS[index]
    names = {"#p": hash_key, "#s": range_key, "#e": "expires_at"}
    values: dict[str, Any] = {
        ":p": {"S": partition},
        ":lo": {"S": low},
        ":hi": {"S": high},
        ":now": {"N": str(int(now.timestamp()))},
    }
    filter_expr = "#e > :now"
    if status is not None:
        names["#st"] = "status"
        values[":st"] = {"S": status}
        filter_expr += " AND #st = :st"
    return {
        "IndexName": index,
        "KeyConditionExpression": "#p = :p AND #s BETWEEN :lo AND :hi",
        "FilterExpression": filter_expr,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def _update_expression(
    sets: dict[str, Any], removes: list[str]
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """`SET #a0 = :v0, ... REMOVE #r0, ...` with its names and (plain) values."""
    names = {f"#a{i}": k for i, k in enumerate(sets)}
    values = {f":v{i}": v for i, v in enumerate(sets.values())}
    expr = "SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(sets)))
    if removes:
        remove_names = {f"#r{i}": k for i, k in enumerate(removes)}
        names.update(remove_names)
        expr += " REMOVE " + ", ".join(remove_names)
    return expr, names, values

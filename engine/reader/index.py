"""The index side of a query: the rows of the time, status or customer index that a page or a
count reads, newest first.

One stream per type, merged; a type's stream reads its months newest first, and a month is
one Query per month shard (`month_shards`, `keys.shard_buckets`), merged in sort order (the
sort key holds the id, so two shards never hold the same position). Each Query asks only for
what the page still needs (a shard: its share), so a page reads about as many items sharded
as unsharded, at the price of one Query per shard.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine import keys
from engine.store.cache import CacheStore
from engine.store.item import CacheItem, IndexEntry

if TYPE_CHECKING:
    from engine.reader.queries import Query

MAX_SK = "\uffff"
# (sort key, type) orders the merged result; newest first means descending.
Position = tuple[str, str]
Row = tuple[Position, CacheItem | IndexEntry]


@dataclass(frozen=True, slots=True)
class IndexReads:
    cache: CacheStore
    page_max: int  # query_page_max
    shards: int  # month_shards

    def rows(
        self,
        query: Query,
        since: datetime,
        until: datetime,
        after: Position | None,
        now: datetime,
    ) -> Iterator[Row]:
        """Index items (documents, or customer-index entries) of every type, newest first,
        after the cursor `after`."""
        streams = [self._type_rows(t, query, since, until, after, now) for t in query.types]
        return heapq.merge(*streams, key=lambda row: row[0], reverse=True)

    def count(self, query: Query, since: datetime, until: datetime, now: datetime) -> int:
        """Select=COUNT over the partitions a page would read: one per type, month and shard."""
        return sum(
            self.cache.count(
                index,
                part,
                keys.iso(since),
                keys.iso(until) + "#" + MAX_SK,
                now=now,
                status=status,
            )
            for type_name in query.types
            for month in keys.months_desc(since, until)
            for index, parts, status in [partitions(type_name, query, month, self.shards)]
            for part in parts
        )

    def _type_rows(
        self,
        type_name: str,
        query: Query,
        since: datetime,
        until: datetime,
        after: Position | None,
        now: datetime,
    ) -> Iterator[Row]:
        low = keys.iso(since)
        high = keys.iso(until) + "#" + MAX_SK
        if after is not None:  # resume at the cursor's month: newer months are done
            high = min(high, after[0])
            until = min(until, keys.parse_iso(after[0].split("#", 1)[0]))
        page = min(query.limit + 1, self.page_max)
        taken = [0]  # a page never needs more than `page` rows of one type: ask for the rest
        for month in keys.months_desc(since, until):
            index, parts, status = partitions(type_name, query, month, self.shards)
            shards = [
                self._shard_rows(
                    type_name,
                    (index, part, low, high, status),
                    after,
                    now,
                    lambda: max(1, page - taken[0]),
                    len(parts),
                )
                for part in parts
            ]
            rows = (  # month shards: one query each, merged in sort order
                shards[0]
                if len(shards) == 1
                else heapq.merge(*shards, key=lambda row: row[0], reverse=True)
            )
            for row in rows:
                taken[0] += 1
                yield row

    def _shard_rows(
        self,
        type_name: str,
        where: tuple[str, str, str, str, str | None],
        after: Position | None,
        now: datetime,
        need: Callable[[], int],
        shards: int,
    ) -> Iterator[Row]:
        """One partition's rows after the cursor, page by page (`need`: the rows the page still
        needs, of which this shard is asked its share)."""
        index, part, low, high, status = where
        start: dict[str, Any] | None = None
        while True:
            items, start = self.cache.query_page(
                index,
                part,
                low,
                high,
                limit=share(need(), shards),
                now=now,
                status=status,
                start_key=start,
            )
            for item in items:
                position = (str(item.tsk), type_name)
                if after is None or position < after:
                    yield position, item
            if not start:
                return


def share(rows: int, shards: int) -> int:
    """What one month shard is asked for when the page still needs `rows`: its share (the
    hash spreads documents evenly) and a margin, not all of it, so a page reads ~rows items
    rather than shards × rows; a shard that runs short is asked again."""
    return rows if shards == 1 else min(rows, -(-rows // shards) + 2)


def partitions(
    type_name: str, query: Query, month: str, shards: int
) -> tuple[str, list[str], str | None]:
    """(index, partitions, status filter) for one type and month: the
    customer index when a customer is asked (status filtered among that customer's entries),
    else the status or the time index; one partition per month shard."""
    index, part, status = keys.TIME_INDEX, f"{type_name}#{month}", None
    if query.customer is not None:
        index, status = keys.CUSTOMER_INDEX, query.status
        part = keys.customer_partition(query.customer, type_name, month)
    elif query.status is not None:
        index, part = keys.STATUS_INDEX, f"{type_name}#{query.status}#{month}"
    return index, keys.shard_buckets(part, shards), status

"""Queries and counts: newest first, with validated page tokens; the S3 path.

The cache answers from its indexes (`index.py`: which partitions, month shards merged); a
page token holds the last sort position served, so the next page resumes across every shard
and type. A range older than the cache window is refused rather than answered incompletely
(ask for `source="s3"` to get it all). While DynamoDB fails, `source="auto"` answers from S3.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from loguru import logger

from engine import cloudwatch, keys, pagetoken
from engine.awsmetrics import kind_of
from engine.documents import Document, doc_type, parse_document
from engine.exceptions import (
    CacheUnavailableError,
    InvalidDocumentError,
    InvalidTimeError,
    NotFoundError,
    QueryOutsideWindowError,
)
from engine.l1 import L1Cache
from engine.reader.gets import Source, parse_body
from engine.reader.index import IndexReads, Position
from engine.settings import Settings
from engine.store.cache import CacheStore
from engine.store.objects import ObjectStore
from engine.timing import timed


@dataclass(frozen=True, slots=True)
class Query:
    types: tuple[str, ...] = ("change", "announcement")
    customer: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True)
class QueryPage:
    items: list[dict[str, Any]]
    next_page_token: str | None
    source: Source
    l1: bool = False  # served from the in-process L1

    def as_dict(self) -> dict[str, Any]:
        return {"items": self.items, "next_page_token": self.next_page_token, "source": self.source}


class Queries:
    """The Reader's queries and counts (engine/reader/__init__.py builds the state they share)."""

    settings: Settings
    cache: CacheStore
    objects: ObjectStore
    l1: L1Cache | None
    _prefixes: dict[str, str]
    _secret: bytes

    @kind_of("read", "docsync.query", ("query", "source"))
    def query(self, query: Query, page_token: str | None = None, source: str = "auto") -> QueryPage:
        """One page, newest first. `source`: auto (cache, S3 if DynamoDB fails), cache, s3."""
        for name in query.types:
            doc_type(name)
        if not self.settings.cache_enabled:
            source = "s3"
        limit = max(1, min(query.limit, self.settings.query.page_max))
        fp = pagetoken.fingerprint(sorted(query.types), query.customer, query.status)
        now = datetime.now(UTC)
        if page_token:
            cursor = pagetoken.decode(page_token, fp, self._secret)
            since, until = keys.parse_iso(cursor.since), keys.parse_iso(cursor.until)
            after: Position | None = (cursor.sort_key, cursor.type)
        else:
            since = query.since or keys.window_start(self.settings.cache_ttl_days, now)
            until = query.until or now
            after = None
        if since > until:
            raise InvalidTimeError("since is after until", ["since", "until"])
        if until > now + timedelta(days=1):  # each month of the range costs a Query
            raise InvalidTimeError("until is more than a day in the future", ["until"])
        log = logger.bind(op="query", types=list(query.types), limit=limit)
        started = time.perf_counter()
        with timed(log) as fields:
            page_source: Source = "s3" if source == "s3" else "cache"
            l1_key = ("query", *_l1_query_key(query), limit, page_token)
            expiry: list[float] = []
            if page_source == "cache":
                if after is None:  # checked on the first page; later pages keep its range
                    self._check_window(since, now)
                if self.l1 is not None:
                    held = self.l1.get(l1_key)
                    if held is not None:
                        fields.update(source="cache", cache="l1")
                        data = json.loads(held)
                        return QueryPage(data["items"], data["next_page_token"], "cache", l1=True)
                    ticket = self.l1.ticket()
                try:
                    rows = self._resolve(
                        self._index().rows(query, since, until, after, now), limit, now, expiry
                    )
                except CacheUnavailableError as exc:
                    if source == "cache":
                        raise
                    fields.update(fallback=str(exc))
                    page_source = "s3"
            if page_source == "s3":
                rows = self._take(self._s3_rows(query, since, until, after), limit)
            items = [doc for _, doc in rows[:limit]]
            token = None
            if len(rows) > limit:
                last = rows[limit - 1][0]
                token = pagetoken.encode(
                    pagetoken.Cursor(last[0], last[1], keys.iso(since), keys.iso(until)),
                    fp,
                    self._secret,
                )
            fields.update(
                source=page_source,
                items=len(items),
                cache="hit" if page_source == "cache" else "miss",
            )
            cloudwatch.record("QueryLatency", (time.perf_counter() - started) * 1000)
            page = QueryPage(items, token, page_source)
            if self.l1 is not None and page_source == "cache":
                blob = json.dumps(page.as_dict()).encode()
                self.l1.put(l1_key, blob, len(blob), ticket, min(expiry, default=float("inf")))
            return page

    def _index(self) -> IndexReads:
        return IndexReads(self.cache, self.settings.query.page_max, self.settings.month_shards)

    def _check_window(self, since: datetime, now: datetime) -> None:
        start = keys.window_start(self.settings.cache_ttl_days, now)
        if since < start - timedelta(minutes=5):
            raise QueryOutsideWindowError(
                f"the range starts {keys.iso(since)}, before the cache window"
                f" ({self.settings.cache_ttl_days} days, from {keys.iso(start)}): the cache cannot"
                " answer it completely; narrow --since or ask S3 with --source s3"
            )

    @staticmethod
    def _take(
        rows: Iterator[tuple[Position, dict[str, Any]]], limit: int
    ) -> list[tuple[Position, dict[str, Any]]]:
        taken = []
        for row in rows:
            taken.append(row)
            if len(taken) > limit:
                break
        return taken

    def _resolve(
        self,
        rows: Iterator[tuple[Position, dict[str, Any]]],
        limit: int,
        now: datetime,
        expiry: list[float],
    ) -> list[tuple[Position, dict[str, Any]]]:
        """The first `limit` + 1 rows as documents. Customer-index entries are merged first and
        only the page's documents are read (one BatchGetItem); an entry that fails its check
        against its document is dropped and the next rows are read in its place. `expiry`
        collects the TTL of every document served (an L1 page expires with the first)."""
        page: list[tuple[Position, dict[str, Any]]] = []
        while len(page) <= limit:
            batch = self._take(rows, limit - len(page))
            if not batch:
                break
            entries = [item for _, item in batch if "doc" in item]
            docs = {str(d["pk"]): d for d in self._documents_of(entries, now)}
            for position, item in batch:
                served = docs.get(str(item["doc"])) if "doc" in item else item
                if served is None:
                    continue
                expiry.append(float(served.get("expires_at", 0)))
                page.append((position, self._item_document(position[1], served)))
        return page

    def _documents_of(self, entries: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
        """The documents of customer-index entries (one BatchGetItem per 100), each only if
        it is still the committed, live, unexpired image the entry was written with (same
        ETag, still listing the customer): an entry left by drift is never served."""
        if not entries:
            return []
        docs = self.cache.batch_get([str(e["doc"]) for e in entries])
        served = []
        for entry in entries:
            doc = docs.get(str(entry["doc"]))
            if (
                doc is not None
                and doc.get("state") == "live"
                and int(doc.get("expires_at", 0)) > now.timestamp()
                and doc.get("etag") == entry.get("etag")
                and doc.get("tsk") == entry.get("tsk")
                and entry.get("customer") in (doc.get("customers") or [])
            ):
                served.append(doc)
        return served

    def count(self, query: Query, source: str = "auto") -> tuple[int, Source]:
        """How many documents match (the same filters and range as `query`): Select=COUNT
        queries on the index a page would read, one per type, month and month shard (more
        past 1 MB)."""
        for name in query.types:
            doc_type(name)
        if not self.settings.cache_enabled:
            source = "s3"
        now = datetime.now(UTC)
        since = query.since or keys.window_start(self.settings.cache_ttl_days, now)
        until = query.until or now
        if since > until:
            raise InvalidTimeError("since is after until", ["since", "until"])
        if until > now + timedelta(days=1):
            raise InvalidTimeError("until is more than a day in the future", ["until"])
        log = logger.bind(op="count", types=list(query.types))
        with timed(log) as fields:
            if source != "s3":
                self._check_window(since, now)
                l1_key = ("count", *_l1_query_key(query))
                if self.l1 is not None:
                    held = self.l1.get(l1_key)
                    if held is not None:
                        fields.update(source="cache", cache="l1", total=held)
                        return int(held), "cache"
                    ticket = self.l1.ticket()
                try:
                    total = self._index().count(query, since, until, now)
                    fields.update(source="cache", total=total)
                    if self.l1 is not None:
                        self.l1.put(l1_key, total, 64, ticket, float("inf"))
                    return total, "cache"
                except CacheUnavailableError as exc:
                    if source == "cache":
                        raise
                    fields.update(fallback=str(exc))
            total = sum(1 for _ in self._s3_rows(query, since, until, None))
            fields.update(source="s3", total=total)
            return total, "s3"

    def _item_document(self, type_name: str, item: dict[str, Any]) -> dict[str, Any]:
        key = str(item["s3_key"])
        if "body" in item:
            return parse_body(str(item["body"]).encode(), key)
        return parse_body(self.objects.get(key).body, key)

    def _s3_rows(
        self, query: Query, since: datetime, until: datetime, after: Position | None
    ) -> Iterator[tuple[Position, dict[str, Any]]]:
        """The slow path: list and read every object of the types, filter, sort."""
        rows: list[tuple[Position, dict[str, Any]]] = []
        for type_name in query.types:
            listing = list(self.objects.list(self._prefixes[type_name]))
            keys_of_type = [(type_name, info.key) for info in listing]
            with ThreadPoolExecutor(self.settings.concurrency) as pool:
                for doc in pool.map(lambda tk: self._s3_document(*tk), keys_of_type):
                    if doc is None or not since <= doc.modified_at <= until:
                        continue
                    if query.status is not None and doc.status != query.status:
                        continue
                    if query.customer is not None and query.customer not in doc.customer_codes:
                        continue
                    position = (keys.time_sort_key(doc.modified_at, doc.id), type_name)
                    if after is None or position < after:
                        rows.append((position, doc.as_dict()))
        rows.sort(key=lambda row: row[0], reverse=True)
        return iter(rows)

    @kind_of("read")
    def _s3_document(self, type_name: str, key: str) -> Document | None:
        if keys.key_to_doc(key, {type_name: self._prefixes[type_name]}) is None:
            return None
        try:
            return parse_document(self.objects.get(key).body, type_name)
        except (NotFoundError, InvalidDocumentError):
            return None  # deleted since the listing, or not a document (the reconciler reports it)


def _l1_query_key(query: Query) -> tuple[Any, ...]:
    return (tuple(sorted(query.types)), query.customer, query.status, query.since, query.until)

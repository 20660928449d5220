"""The read path (invariant 4): cache hit, or S3 plus a backfill that never goes backwards.

While DynamoDB fails (its circuit breaker open), gets and queries are answered from S3 and
say so. Queries are newest first with validated page tokens, and a range older than the cache
window is refused rather than answered incompletely (ask for `source="s3"` to get it all).
"""

from __future__ import annotations

import bisect
import heapq
import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

from loguru import logger

from engine import cloudwatch, keys, metrics, pagetoken
from engine.awsmetrics import kind_of
from engine.documents import Document, doc_type, parse_document
from engine.exceptions import (
    CacheUnavailableError,
    DocsyncError,
    InvalidDocumentError,
    NotFoundError,
    QueryOutsideWindowError,
)
from engine.l1 import L1Cache
from engine.settings import Settings
from engine.store.cache import CacheStore
from engine.store.item import CacheItem
from engine.store.objects import ObjectStore, StoredObject
from engine.sync import CacheSync
from engine.timing import timed

Source = Literal["cache", "s3"]
_MAX_SK = "\uffff"


@dataclass
class ReadStats:
    """In-process read counters. Totals only grow; `take_delta()` hands what was added since
    the previous take to the cluster-wide flush (engine/streams/flush.py). Latencies go into
    fixed buckets so that flushes from many processes add up to exact percentiles' inputs."""

    # Upper bounds (ms) of the latency buckets; one more bucket holds everything above.
    BUCKETS_MS: ClassVar[tuple[float, ...]] = (
        1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
    )  # fmt: skip

    @dataclass(frozen=True, slots=True)
    class Delta:
        """Counts added between two takes (or a sum of such deltas: they add up)."""

        hits: int = 0
        misses: int = 0
        s3_fallbacks: int = 0
        backfills: int = 0
        latency_sum_ms: float = 0.0
        buckets: tuple[int, ...] = ()

        @property
        def reads(self) -> int:
            return self.hits + self.misses + self.s3_fallbacks

        def empty(self) -> bool:
            return self.reads == 0 and self.backfills == 0

        def __add__(self, other: ReadStats.Delta) -> ReadStats.Delta:
            return self._combine(other, 1)

        def __sub__(self, other: ReadStats.Delta) -> ReadStats.Delta:
            return self._combine(other, -1)

        def _combine(self, other: ReadStats.Delta, sign: int) -> ReadStats.Delta:
            size = max(len(self.buckets), len(other.buckets))
            mine = (*self.buckets, *([0] * (size - len(self.buckets))))
            theirs = (*other.buckets, *([0] * (size - len(other.buckets))))
            return ReadStats.Delta(
                hits=self.hits + sign * other.hits,
                misses=self.misses + sign * other.misses,
                s3_fallbacks=self.s3_fallbacks + sign * other.s3_fallbacks,
                backfills=self.backfills + sign * other.backfills,
                latency_sum_ms=self.latency_sum_ms + sign * other.latency_sum_ms,
                buckets=tuple(a + sign * b for a, b in zip(mine, theirs, strict=True)),
            )

    hits: int = 0
    misses: int = 0
    s3_fallbacks: int = 0
    backfills: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=4096))
    latency_sum_ms: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(ReadStats.BUCKETS_MS) + 1))
    _taken: ReadStats.Delta | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, outcome: str, ms: float, backfilled: bool = False) -> None:
        slot = bisect.bisect_left(self.BUCKETS_MS, ms)
        with self._lock:
            if outcome == "hit":
                self.hits += 1
            elif outcome == "miss":
                self.misses += 1
            else:
                self.s3_fallbacks += 1
            self.backfills += int(backfilled)
            self.latencies_ms.append(ms)
            self.latency_sum_ms += ms
            self.buckets[slot] += 1

    def _totals(self) -> ReadStats.Delta:
        return ReadStats.Delta(
            self.hits,
            self.misses,
            self.s3_fallbacks,
            self.backfills,
            self.latency_sum_ms,
            tuple(self.buckets),
        )

    def take_delta(self) -> ReadStats.Delta:
        """What was recorded since the previous take; the next take starts from here."""
        with self._lock:
            totals = self._totals()
            delta = totals - self._taken if self._taken is not None else totals
            self._taken = totals
            return delta


@dataclass(frozen=True, slots=True)
class ReadResult:
    document: dict[str, Any]
    source: Source
    cache: str  # hit | miss | bypass
    version: int | None = None  # the cached entry's version (hits only): an HTTP ETag


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


# (sort key, type) orders the merged result; newest first means descending.
Position = tuple[str, str]


class Reader:
    def __init__(
        self,
        settings: Settings,
        cache: CacheStore,
        objects: ObjectStore,
        l1: L1Cache | None = None,
        *,
        sync: CacheSync,
    ) -> None:
        self.settings = settings
        self.cache = cache
        self.objects = objects
        self.l1 = l1
        self.stats = ReadStats()
        self.sync = sync  # the engine's: backfills go through the convergence rules
        self._prefixes = settings.prefixes()
        self._secret = settings.page_token_secret.get_secret_value().encode()

    # -- get ----------------------------------------------------------------------------------

    @kind_of("read", "docsync.get", ("type_name", "doc_id"))
    def get(self, type_name: str, doc_id: str) -> ReadResult:
        doc_type(type_name)
        key = keys.s3_key(self._prefixes[type_name], doc_id)
        log = logger.bind(op="get", type=type_name, id=doc_id)
        started = time.perf_counter()

        def record(outcome: str, backfilled: bool = False) -> None:
            seconds = time.perf_counter() - started
            self.stats.record("hit" if outcome == "l1" else outcome, seconds * 1000, backfilled)
            cloudwatch.record("QueryLatency", seconds * 1000)
            metrics.READS.labels(outcome).inc()
            metrics.READ_SECONDS.labels(outcome).observe(seconds)

        with timed(log) as fields:
            if not self.settings.cache_enabled:  # rollout/rollback mode: S3 only
                fields.update(cache="off", source="s3")
                stored = self.objects.get(key)
                record("bypass")
                return ReadResult(_parse_body(stored.body, key), "s3", "off")
            l1_key = ("get", type_name, doc_id)
            if self.l1 is not None:
                held = self.l1.get(l1_key)
                if held is not None:
                    body, version = held
                    fields.update(cache="l1", source="cache", version=version)
                    record("l1")
                    return ReadResult(_parse_body(body, key), "cache", "l1", version)
                ticket = self.l1.ticket()
            try:
                entry = self.cache.get(type_name, doc_id)
            except CacheUnavailableError as exc:
                fields.update(cache="bypass", source="s3", reason=str(exc))
                stored = self.objects.get(key)
                record("bypass")
                return ReadResult(_parse_body(stored.body, key), "s3", "bypass")
            if entry is not None and entry.servable():
                document = self._entry_body(entry, key)
                if document is not None:
                    fields.update(cache="hit", source="cache", version=entry.version)
                    if self.l1 is not None and entry.body is not None:
                        self.l1.put(
                            l1_key,
                            (entry.body, entry.version),
                            len(entry.body) + 200,
                            ticket,
                            float(entry.expires_at or 0),
                        )
                    record("hit")
                    return ReadResult(document, "cache", "hit", entry.version)
            fields.update(cache="miss", source="s3")
            stored = self.objects.get(key)
            document = _parse_body(stored.body, key)
            fields["backfilled"] = self._backfill(type_name, stored, absent=entry is None)
            record("miss", fields["backfilled"])
            return ReadResult(document, "s3", "miss")

    def _entry_body(self, entry: CacheItem, key: str) -> dict[str, Any] | None:
        if entry.body is not None:
            return _parse_body(entry.body, key)
        if entry.body_in_s3:  # oversized document: metadata-only entry, body from S3
            stored = self.objects.get(key)
            if stored.info.etag == entry.etag:
                return _parse_body(stored.body, key)
        return None

    def _backfill(self, type_name: str, stored: StoredObject, absent: bool) -> bool:
        """Fill the cache after a miss, unless out of window, invalid, dry run or not newer.
        `absent`: the get found no entry at all, so the fill may be one put-if-absent."""
        if self.settings.dry_run or not keys.in_window(
            stored.info.last_modified, self.settings.cache_ttl_days
        ):
            return False
        try:
            doc = parse_document(stored.body, type_name)
        except InvalidDocumentError:
            return False
        try:
            filled = self.fill(doc, stored, source="backfill", absent=absent)
        except DocsyncError as exc:  # the read succeeded; a failed fill only costs a miss
            logger.bind(op="get.backfill", type=type_name, id=doc.id).warning("not filled: {}", exc)
            return False
        return filled

    def fill(self, doc: Document, stored: StoredObject, source: str, absent: bool = False) -> bool:
        """Cache what S3 returned, unless the entry is newer or being written."""
        return self.sync.upsert(doc, stored, source, current=None, read=absent) == "applied"

    # -- query --------------------------------------------------------------------------------

    @kind_of("read", "docsync.query", ("query", "source"))
    def query(self, query: Query, page_token: str | None = None, source: str = "auto") -> QueryPage:
        """One page, newest first. `source`: auto (cache, S3 if DynamoDB fails), cache, s3."""
        for name in query.types:
            doc_type(name)
        if not self.settings.cache_enabled:
            source = "s3"
        limit = max(1, min(query.limit, self.settings.query_page_max))
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
            raise InvalidDocumentError("--since is after --until", ["since", "until"])
        if until > now + timedelta(days=1):  # each month of the range costs a Query
            raise InvalidDocumentError("--until is more than a day in the future", ["until"])
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
                        self._cache_rows(query, since, until, after, now), limit, now, expiry
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

    def _cache_rows(
        self,
        query: Query,
        since: datetime,
        until: datetime,
        after: Position | None,
        now: datetime,
    ) -> Iterator[tuple[Position, dict[str, Any]]]:
        """Index items (documents, or customer-index entries) of every type, newest first."""
        streams = [self._cache_stream(t, query, since, until, after, now) for t in query.types]
        return heapq.merge(*streams, key=lambda row: row[0], reverse=True)

    def _cache_stream(
        self,
        type_name: str,
        query: Query,
        since: datetime,
        until: datetime,
        after: Position | None,
        now: datetime,
    ) -> Iterator[tuple[Position, dict[str, Any]]]:
        low = keys.iso(since)
        high = keys.iso(until) + "#" + _MAX_SK
        if after is not None:  # resume at the cursor's month: newer months are done
            high = min(high, after[0])
            until = min(until, keys.parse_iso(after[0].split("#", 1)[0]))
        page = min(query.limit + 1, self.settings.query_page_max)
        yielded = 0  # a page never needs more than `page` rows of one type: ask for the rest
        for month in keys.months_desc(since, until):
            index, attr, part, status = _partition(type_name, query, month)
            start: dict[str, Any] | None = None
            while True:
                items, start = self.cache.query_page(
                    index,
                    attr,
                    part,
                    low,
                    high,
                    limit=max(1, page - yielded),
                    now=now,
                    status=status,
                    start_key=start,
                )
                for item in items:
                    position = (str(item["tsk"]), type_name)
                    if after is not None and position >= after:
                        continue
                    yielded += 1
                    yield position, item
                if not start:
                    break

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
        queries on the index a page would read, one per type and month (more past 1 MB)."""
        for name in query.types:
            doc_type(name)
        if not self.settings.cache_enabled:
            source = "s3"
        now = datetime.now(UTC)
        since = query.since or keys.window_start(self.settings.cache_ttl_days, now)
        until = query.until or now
        if since > until:
            raise InvalidDocumentError("--since is after --until", ["since", "until"])
        if until > now + timedelta(days=1):
            raise InvalidDocumentError("--until is more than a day in the future", ["until"])
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
                    total = sum(
                        self.cache.count(
                            index,
                            attr,
                            part,
                            keys.iso(since),
                            keys.iso(until) + "#" + _MAX_SK,
                            now=now,
                            status=status,
                        )
                        for type_name in query.types
                        for month in keys.months_desc(since, until)
                        for index, attr, part, status in [_partition(type_name, query, month)]
                    )
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
            return _parse_body(str(item["body"]).encode(), key)
        return _parse_body(self.objects.get(key).body, key)

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


def _partition(type_name: str, query: Query, month: str) -> tuple[str, str, str, str | None]:
    """(index, partition attribute, partition, status filter) for one type and month: the
    customer index when a customer is asked (status filtered among that customer's entries),
    else the status or the time index."""
    if query.customer is not None:
        part = keys.customer_partition(query.customer, type_name, month)
        return keys.CUSTOMER_INDEX, "cpk", part, query.status
    if query.status is not None:
        return keys.STATUS_INDEX, "spk", f"{type_name}#{query.status}#{month}", None
    return keys.TIME_INDEX, "tpk", f"{type_name}#{month}", None


def _parse_body(body: bytes, key: str) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise InvalidDocumentError(
            f"{key} is not a valid JSON document: {exc}", ["<body>"]
        ) from exc
    if not isinstance(value, dict):
        raise InvalidDocumentError(f"{key} is not a JSON object", ["<body>"])
    return value

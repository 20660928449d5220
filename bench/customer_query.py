"""Customer queries: the customer index (after) vs the time index with a `contains` filter
(before: the request shapes the reader sent until the index existed), on a corpus with a 1%
and a 25% customer, at two table sizes.

Reported per page of 20 (both types, the 90-day window): Query calls, BatchGetItem calls,
items read per item returned (sum of ScannedCount / sum of Count over the Query responses; and
with the BatchGetItem reads of the documents added), and median ms. Also the Select=COUNT cost.

Run: .venv/bin/python bench/customer_query.py [--documents 2000 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from _common import MOTO_CAVEAT, Harness, harness, median_ms, print_table, progress

from engine import keys
from engine.documents import parse_document
from engine.reader import Query
from engine.store.item import (
    INLINE_BODY_LIMIT,
    deserialize,
    index_entries,
    live_attributes,
    serialize,
)
from engine.store.objects import ObjectInfo

PAGE = 20
OTHERS = [f"cust{n:02d}" for n in range(40)]
TARGETS = {"one_pct": 0.01, "quarter": 0.25}


def corpus_items(h: Harness, count: int, seed: int) -> list[dict[str, Any]]:
    """Cache items (documents and their index entries) as the engine writes them."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    items: list[dict[str, Any]] = []
    for n in range(count):
        type_name = "change" if rng.random() < 0.6 else "announcement"
        customers = rng.sample(OTHERS, rng.randint(1, 2))
        customers += [name for name, share in TARGETS.items() if rng.random() < share]
        modified = now - timedelta(seconds=rng.randrange(85 * 86400))
        doc = parse_document(
            {
                "id": f"{'CHG' if type_name == 'change' else 'ANN'}-{n:06d}",
                "object_type": type_name,
                "title": f"document {n} " + "x" * rng.randrange(200, 1200),
                "customer_codes": customers,
                "status": rng.choice(["draft", "approved", "published"]),
                "created_at": keys.iso(modified - timedelta(days=1)),
                "modified_at": keys.iso(modified),
            }
        )
        prefix = h.settings.prefixes[doc.type]
        info = ObjectInfo(keys.s3_key(prefix, doc.id), doc.etag, len(doc.body), now)
        attrs = live_attributes(
            doc,
            info,
            prefix=prefix,
            source="backfill",
            ttl_days=h.settings.cache_ttl_days,
            inline_limit=INLINE_BODY_LIMIT,
            month_shards=h.settings.month_shards,
        )
        items.append(serialize({**attrs, "pk": keys.cache_pk(doc.type, doc.id), "version": 1}))
        items += [serialize(e) for e in index_entries(doc.type, doc.id, attrs)]
    return items


def load(h: Harness, count: int, seed: int) -> None:
    items = corpus_items(h, count, seed)
    batches = [items[i : i + 25] for i in range(0, len(items), 25)]
    table = h.settings.table
    started = time.perf_counter()

    def write(batch: list[dict[str, Any]]) -> None:
        request: dict[str, Any] = {table: [{"PutRequest": {"Item": i}} for i in batch]}
        while request:
            response = h.admin.dynamodb.batch_write_item(RequestItems=request)
            request = dict(response.get("UnprocessedItems") or {})

    with ThreadPoolExecutor(4) as pool:
        for n, _ in enumerate(pool.map(write, batches), 1):
            if n % 50 == 0 or n == len(batches):
                progress(f"load {count}", n, len(batches), started)


class Responses:
    """ScannedCount / Count of every Query, and items returned by every BatchGetItem."""

    def __init__(self, client: Any) -> None:
        self.calls: Counter[str] = Counter()
        self.scanned = self.count = self.batch_items = 0
        client.meta.events.register("after-call.dynamodb.*", self._after)

    def reset(self) -> None:
        self.calls.clear()
        self.scanned = self.count = self.batch_items = 0

    def _after(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls[model.name] += 1
        if model.name == "Query":
            self.scanned += int(parsed.get("ScannedCount", 0))
            self.count += int(parsed.get("Count", 0))
        elif model.name == "BatchGetItem":
            self.batch_items += sum(len(v) for v in parsed.get("Responses", {}).values())


def before_page(h: Harness, customer: str, now: datetime) -> list[str]:
    """The reader's former customer query: each type's time index, month by month, pages of
    limit + 1 with `contains(customers, :c)` as a filter, merged newest first."""
    ddb, table = h.raw.dynamodb, h.settings.table
    since = keys.window_start(h.settings.cache_ttl_days, now)
    low, high = keys.iso(since), keys.iso(now) + "#\uffff"

    def stream(type_name: str) -> Iterator[tuple[str, str]]:
        for month in keys.months_desc(since, now):
            start: dict[str, Any] | None = None
            while True:
                kwargs: dict[str, Any] = {
                    "TableName": table,
                    "IndexName": keys.TIME_INDEX,
                    "KeyConditionExpression": "#p = :p AND #s BETWEEN :lo AND :hi",
                    "FilterExpression": "#e > :now AND contains(#c, :c)",
                    "ExpressionAttributeNames": {
                        "#p": "tpk",
                        "#s": "tsk",
                        "#e": "expires_at",
                        "#c": "customers",
                    },
                    "ExpressionAttributeValues": serialize(
                        {
                            ":p": f"{type_name}#{month}",
                            ":lo": low,
                            ":hi": high,
                            ":now": int(now.timestamp()),
                            ":c": customer,
                        }
                    ),
                    "ScanIndexForward": False,
                    "Limit": PAGE + 1,
                }
                if start:
                    kwargs["ExclusiveStartKey"] = start
                response = ddb.query(**kwargs)
                for raw in response.get("Items", []):
                    item = deserialize(raw)
                    yield str(item["tsk"]), str(item["pk"])
                start = response.get("LastEvaluatedKey")
                if not start:
                    break

    merged = heapq.merge(stream("announcement"), stream("change"), reverse=True)
    rows = []
    for row in merged:
        rows.append(row[1])
        if len(rows) > PAGE:
            break
    return rows[:PAGE]


def after_page(h: Harness, customer: str, types: tuple[str, ...] | None = None) -> list[str]:
    query = Query(customer=customer, limit=PAGE)
    if types:
        query = Query(types=types, customer=customer, limit=PAGE)
    page = h.engine.reader.query(query)
    return [f"{i['object_type']}#{i['id']}" for i in page.items]


def measure(h: Harness, responses: Responses, fn: Any, repeat: int) -> dict[str, Any]:
    fn()  # warm
    samples, shapes = [], []
    for _ in range(repeat):
        responses.reset()
        started = time.perf_counter()
        returned = len(fn())
        samples.append(time.perf_counter() - started)
        shapes.append(
            (
                responses.calls["Query"],
                responses.calls["BatchGetItem"],
                responses.scanned,
                responses.count,
                responses.batch_items,
                returned,
            )
        )
    queries, batches, scanned, count, batch_items, returned = shapes[-1]
    return {
        "returned": returned,
        "query_calls": queries,
        "batch_get_calls": batches,
        "scanned": scanned,
        "query_count": count,
        "read_per_returned": round(scanned / max(count, 1), 3),
        "read_per_returned_with_docs": round((scanned + batch_items) / max(returned, 1), 3),
        "median_ms": round(median_ms(samples), 1),
    }


def run(size: int, repeat: int, seed: int, shards: int = 1) -> dict[str, Any]:
    with harness(month_shards=shards) as h:
        load(h, size, seed)
        responses = Responses(h.raw.dynamodb)
        engine_responses = Responses(h.engine.clients.dynamodb)
        now = datetime.now(UTC)
        result: dict[str, Any] = {"documents": size, "month_shards": shards}
        for customer in TARGETS:
            before = (  # the former request shapes know no shards
                measure(h, responses, lambda c=customer: before_page(h, c, now), repeat)
                if shards == 1
                else None
            )
            after = measure(h, engine_responses, lambda c=customer: after_page(h, c), repeat)
            one_type = measure(
                h, engine_responses, lambda c=customer: after_page(h, c, ("change",)), repeat
            )
            engine_responses.reset()
            started = time.perf_counter()
            total, _ = h.engine.reader.count(Query(customer=customer))
            count = {
                "total": total,
                "query_calls": engine_responses.calls["Query"],
                "ms": round((time.perf_counter() - started) * 1000, 1),
            }
            result[customer] = {
                "before": before,
                "after": after,
                "after_one_type": one_type,
                "count": count,
            }
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--month-shards", type=int, default=1, help="month_shards (1)")
    args = parser.parse_args()
    results = [run(size, args.repeat, args.seed, args.month_shards) for size in args.documents]
    rows = []
    for r in results:
        for customer in TARGETS:
            for variant in ("before", "after", "after_one_type"):
                m = r[customer][variant]
                if m is None:
                    continue
                rows.append(
                    [
                        f"{r['documents']:,} docs, {customer}, {variant}",
                        m["returned"],
                        m["query_calls"],
                        m["batch_get_calls"],
                        m["read_per_returned"],
                        m["read_per_returned_with_docs"],
                        m["median_ms"],
                    ]
                )
    print_table(
        f"One page of {PAGE} by customer (both types, 90-day window,"
        f" month_shards={args.month_shards})",
        [
            "corpus, customer, variant",
            "items",
            "Query calls",
            "BatchGet calls",
            "Scanned/Count",
            "read/returned incl. docs",
            "median ms",
        ],
        rows,
    )
    print_table(
        "Total count (Select=COUNT on the customer index)",
        ["corpus, customer", "total", "Query calls", "ms"],
        [
            [f"{r['documents']:,} docs, {c}", *r[c]["count"].values()]
            for r in results
            for c in TARGETS
        ],
    )
    print(f"\n{MOTO_CAVEAT}")
    print(json.dumps({"bench": "customer_query", "results": results}, sort_keys=True))


if __name__ == "__main__":
    main()

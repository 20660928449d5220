"""Read path: cache-hit get vs a raw GetItem, and a 90-day query via the cache vs via S3.

Run: .venv/bin/python bench/read_path.py [--documents 10000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import adapter_overhead
from _common import (
    MOTO_CAVEAT,
    Harness,
    cache_item,
    harness,
    median_ms,
    print_table,
    progress,
    verdict,
)

from engine import keys
from engine.documents import Document, parse_document
from engine.reader import Query
from engine.sample import sample_documents
from engine.store.item import deserialize, index_entries, serialize

GET_OVERHEAD_TARGET = 0.15
QUERY_CALLS_TARGET = 20.0
QUERY_SPEED_TARGET = 10.0


def load_corpus(h: Harness, count: int, seed: int) -> list[Document]:
    """S3 puts and cache items written directly (not the pipeline): a fast, faithful load."""
    docs = [parse_document(raw) for raw in sample_documents(count, seed)]
    prefixes = h.settings.prefixes
    started = time.perf_counter()

    def put(doc: Document) -> dict[str, Any]:
        info = h.engine.objects.put(keys.s3_key(prefixes[doc.type], doc.id), doc.body)
        return cache_item(h.settings, doc, info, "backfill")

    with ThreadPoolExecutor(h.settings.concurrency) as pool:
        items = []
        for n, item in enumerate(pool.map(put, docs), 1):
            items.append(item)
            if n % 250 == 0 or n == count:
                h.drain_events()
                progress("S3 puts", n, count, started)
        for doc, item in zip(docs, list(items), strict=True):  # and their customer index
            image = deserialize(item)
            items += [serialize(e) for e in index_entries(doc.type, doc.id, image)]
        batches = [items[i : i + 25] for i in range(0, len(items), 25)]
        started = time.perf_counter()
        for n, _ in enumerate(pool.map(lambda b: write_batch(h, b), batches), 1):
            if n % 20 == 0 or n == len(batches):
                progress("cache batches", n, len(batches), started)
    h.counter.reset()
    return docs


def write_batch(h: Harness, items: list[dict[str, Any]]) -> None:
    table = h.settings.table
    request: dict[str, Any] = {table: [{"PutRequest": {"Item": item}} for item in items]}
    while request:
        response = h.raw.dynamodb.batch_write_item(RequestItems=request)
        request = dict(response.get("UnprocessedItems") or {})


def bench_gets(h: Harness, docs: list[Document], rounds: int, per_round: int) -> dict[str, Any]:
    """Interleaved rounds, alternating which variant goes first."""
    targets = [(d.type, d.id) for d in docs[:per_round]]
    ddb, table = h.raw.dynamodb, h.settings.table

    def engine_get(type_name: str, doc_id: str) -> None:
        h.engine.reader.get(type_name, doc_id)

    def raw_get(type_name: str, doc_id: str) -> None:
        ddb.get_item(
            TableName=table, Key={"pk": {"S": f"{type_name}#{doc_id}"}}, ConsistentRead=True
        )

    variants: dict[str, Callable[[str, str], None]] = {"engine": engine_get, "raw": raw_get}
    for fn in variants.values():  # warm connections and code paths
        for t, i in targets[:20]:
            fn(t, i)
    h.counter.reset()
    hits_before = h.engine.reader.stats.hits
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(rounds):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name in order:
            fn = variants[name]
            for t, i in targets:
                started = time.perf_counter()
                fn(t, i)
                samples[name].append(time.perf_counter() - started)
    gets = rounds * len(targets)
    engine_ms, raw_ms = median_ms(samples["engine"]), median_ms(samples["raw"])
    return {
        "gets_per_variant": gets,
        "engine_median_ms": round(engine_ms, 4),
        "raw_median_ms": round(raw_ms, 4),
        "overhead_ratio": round(engine_ms / raw_ms - 1, 4),
        "aws_calls_per_get": h.counter.total() / gets,
        "hits": h.engine.reader.stats.hits - hits_before,
        "calls": dict(h.counter.counts),
    }


def run_query(h: Harness, source: str) -> tuple[float, Counter[str], list[str]]:
    h.counter.reset()
    started = time.perf_counter()
    page = h.engine.reader.query(Query(limit=50), source=source)
    seconds = time.perf_counter() - started
    return seconds, Counter(h.counter.counts), [str(item["id"]) for item in page.items]


def bench_query(h: Harness, docs: list[Document], repeats: int) -> dict[str, Any]:
    scanned: Counter[str] = Counter()

    def count_items(parsed: dict[str, Any], **_: Any) -> None:
        scanned["read"] += int(parsed.get("ScannedCount", 0))

    h.engine.clients.dynamodb.meta.events.register("after-call.dynamodb.Query", count_items)
    cache_runs = [run_query(h, "auto") for _ in range(repeats)]
    read_per_returned = scanned["read"] / max(sum(len(run[2]) for run in cache_runs), 1)
    cache_ms = median_ms([run[0] for run in cache_runs])
    cache_calls = cache_runs[0][1]
    print("querying via S3 (lists and reads every object) ...", file=sys.stderr, flush=True)
    s3_seconds, s3_calls, s3_ids = run_query(h, "s3")
    s3_ms = s3_seconds * 1000

    h.counter.reset()
    now = datetime.now(UTC)
    started = time.perf_counter()
    token: str | None = None
    pages = items = 0
    calls_per_page: list[int] = []
    while True:
        before = h.counter.total()
        page = h.engine.reader.query(Query(limit=1000), page_token=token)
        calls_per_page.append(h.counter.total() - before)
        pages, items = pages + 1, items + len(page.items)
        token = page.next_page_token
        if not token:
            break
    paging_ms = (time.perf_counter() - started) * 1000
    since = now - timedelta(days=h.settings.cache_ttl_days)
    expected = sum(1 for d in docs if since <= d.modified_at <= now)
    return {
        "cache_ms": round(cache_ms, 2),
        "s3_ms": round(s3_ms, 2),
        "cache_calls": sum(cache_calls.values()),
        "s3_calls": sum(s3_calls.values()),
        "calls_ratio": round(sum(s3_calls.values()) / max(sum(cache_calls.values()), 1), 1),
        "speed_ratio": round(s3_ms / cache_ms, 1),
        "cache_calls_by_op": dict(cache_calls),
        "s3_calls_by_op": dict(s3_calls),
        "same_first_page": cache_runs[0][2] == s3_ids,
        "items_read_per_returned": round(read_per_returned, 3),
        "full_paging": {
            "page_limit": 1000,
            "pages": pages,
            "items": items,
            "expected_items": expected,
            "ms": round(paging_ms, 1),
            "aws_calls": h.counter.total(),
            "aws_calls_per_page": round(h.counter.total() / pages, 2),
            "aws_calls_each_page": calls_per_page,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=10_000, help="corpus size (10000)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved get rounds (5)")
    parser.add_argument("--gets", type=int, default=200, help="gets per variant per round (200)")
    parser.add_argument("--query-repeats", type=int, default=5, help="cache query runs (5)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--month-shards", type=int, default=1, help="month_shards (1)")
    args = parser.parse_args()

    with harness(month_shards=args.month_shards) as h:
        docs = load_corpus(h, args.documents, args.seed)
        print("timing gets ...", file=sys.stderr, flush=True)
        gets = bench_gets(h, docs, args.rounds, min(args.gets, len(docs)))
        print("timing queries ...", file=sys.stderr, flush=True)
        query = bench_query(h, docs, args.query_repeats)
        print("timing the adapter's metrics and tracing ...", file=sys.stderr, flush=True)
        adapter = adapter_overhead.report(h.settings, "get")  # on vs off, cache-hit get

    get_ok = gets["overhead_ratio"] <= GET_OVERHEAD_TARGET
    hit_ok = gets["aws_calls_per_get"] == 1 and gets["hits"] == gets["gets_per_variant"]
    calls_ok = query["calls_ratio"] >= QUERY_CALLS_TARGET
    speed_ok = query["speed_ratio"] >= QUERY_SPEED_TARGET
    paging = query["full_paging"]

    print(
        f"\ndocsync read path — {args.documents:,} documents on an embedded moto,"
        f" month_shards={args.month_shards}"
    )
    print_table(
        f"Cache-hit get ({args.rounds} interleaved rounds × {args.gets} gets per variant)",
        ["variant", "median ms/get", "AWS calls/get"],
        [
            ["engine reader.get", gets["engine_median_ms"], gets["aws_calls_per_get"]],
            ["raw boto3 get_item", gets["raw_median_ms"], 1.0],
        ],
    )
    print(
        f"  overhead: {gets['overhead_ratio']:+.1%} (target ≤ +15%: {verdict(get_ok)});"
        f" hit = 1 AWS call ({gets['hits']}/{gets['gets_per_variant']} hits): {verdict(hit_ok)}"
    )
    print_table(
        "90-day query, newest first, limit 50",
        ["path", "ms", "AWS calls"],
        [
            ["cache (source=auto)", query["cache_ms"], query["cache_calls"]],
            ["S3 (source=s3)", query["s3_ms"], query["s3_calls"]],
        ],
    )
    print(
        f"  {query['calls_ratio']:,.1f}× fewer AWS calls (target ≥ 20×: {verdict(calls_ok)});"
        f" {query['speed_ratio']:,.1f}× faster (target ≥ 10×: {verdict(speed_ok)});"
        f" same first page from both paths: {query['same_first_page']}"
    )
    print(
        f"  AWS calls per query page (cache): {query['cache_calls']};"
        f" index items read per item returned: {query['items_read_per_returned']}"
    )
    print_table(
        "Whole 90-day result via the cache, page tokens, limit 1000",
        ["pages", "items", "expected", "ms", "AWS calls", "calls/page", "calls of each page"],
        [
            [
                paging["pages"],
                paging["items"],
                paging["expected_items"],
                paging["ms"],
                paging["aws_calls"],
                paging["aws_calls_per_page"],
                " ".join(map(str, paging["aws_calls_each_page"])),
            ]
        ],
    )
    print(f"\n{MOTO_CAVEAT}")
    result = {
        "bench": "read_path",
        "documents": args.documents,
        "get": gets,
        "query": query,
        "adapter_overhead": adapter,
        "targets": {
            "get_overhead_le_15pct": get_ok,
            "hit_is_one_call": hit_ok,
            "query_calls_ge_20x": calls_ok,
            "query_speed_ge_10x": speed_ok,
        },
        "moto_caveat": MOTO_CAVEAT,
    }
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()

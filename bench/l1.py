"""L1: a get and a query page served from the in-process L1 against a DynamoDB GetItem (and
the same page from the cache table), in one run; GetItem calls a hot key costs 100 concurrent
readers with and without L1.

Run: .venv/bin/python bench/l1.py [--reads 2000]
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from _common import MOTO_CAVEAT, Harness, harness, median_ms, print_table

from engine import keys
from engine.app import Engine
from engine.documents import parse_document
from engine.reader import Query

RATIO_TARGET = 50.0


def seed(h: Harness, count: int) -> None:
    now = datetime.now(UTC)
    for n in range(count):
        h.engine.pipeline.put(
            parse_document(
                {
                    "id": f"CHG-{n:04d}",
                    "object_type": "change",
                    "title": f"document {n} " + "x" * 600,
                    "customer_codes": ["acme", f"c{n % 7}"],
                    "status": "approved",
                    "created_at": keys.iso(now - timedelta(days=2)),
                    "modified_at": keys.iso(now - timedelta(minutes=n)),
                }
            )
        )
    h.drain_events()


def timed(fn: Any, reads: int) -> list[float]:
    samples = []
    for _ in range(reads):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=100)
    args = parser.parse_args()
    with harness() as h:
        seed(h, 60)
        l1_engine = Engine.build(h.settings, l1=True)
        ddb, table = h.raw.dynamodb, h.settings.table
        q = Query(types=("change",), customer="acme", limit=20)

        def raw_get() -> None:
            ddb.get_item(TableName=table, Key={"pk": {"S": "change#CHG-0001"}}, ConsistentRead=True)

        def l1_get() -> None:
            assert l1_engine.reader.get("change", "CHG-0001").cache == "l1"

        def cache_page() -> None:
            h.engine.reader.query(q)

        def l1_page() -> None:
            assert l1_engine.reader.query(q).l1

        l1_engine.reader.get("change", "CHG-0001")
        l1_engine.reader.query(q)
        assert l1_engine.l1 is not None
        l1_engine.l1.max_staleness_s = 3600.0  # the latency of a hit, not of refills
        l1_engine.l1.clear()
        l1_engine.reader.get("change", "CHG-0001")
        l1_engine.reader.query(q)
        raw = timed(raw_get, min(args.reads, 500))
        hits = timed(l1_get, args.reads)
        pages = timed(cache_page, 20)
        page_hits = timed(l1_page, args.reads)

        # A hot key read by 100 concurrent readers, 1 s staleness: GetItem calls with and
        # without L1 (the calls are counted by the engines' own counters).
        results: dict[str, Any] = {}
        for label, use_l1 in (("without L1", False), ("with L1 (1 s)", True)):
            engine = Engine.build(h.settings, h.counter, l1=use_l1)
            reads = args.clients * 20
            h.counter.reset()
            started = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                list(pool.map(engine.reader.get, ["change"] * reads, ["CHG-0002"] * reads))
            results[label] = {
                "reads": reads,
                "get_item_calls": h.counter.counts["dynamodb.GetItem"],
                "s": round(time.perf_counter() - started, 2),
            }
    ratio_get = median_ms(raw) / median_ms(hits)
    ratio_page = median_ms(pages) / median_ms(page_hits)
    print_table(
        "L1 hit vs DynamoDB (median ms, one run)",
        ["read", "median ms", "ratio"],
        [
            ["GetItem (raw boto3)", median_ms(raw), 1.0],
            ["get from L1", median_ms(hits), ratio_get],
            ["customer page from the cache table", median_ms(pages), 1.0],
            ["customer page from L1", median_ms(page_hits), ratio_page],
        ],
    )
    print_table(
        f"Hot key, {args.clients} concurrent readers",
        ["variant", "reads", "GetItem calls", "s"],
        [[label, *r.values()] for label, r in results.items()],
    )
    met = ratio_get >= RATIO_TARGET
    print(
        f"\nget from L1 {ratio_get:,.0f}x faster than GetItem (target >= {RATIO_TARGET:.0f}x:"
        f" {'MET' if met else 'NOT MET'})"
    )
    print(f"\n{MOTO_CAVEAT}")
    print(
        json.dumps(
            {
                "bench": "l1",
                "get_ratio": round(ratio_get, 1),
                "page_ratio": round(ratio_page, 1),
                "median_ms": {
                    "get_item": round(median_ms(raw), 4),
                    "l1_get": round(median_ms(hits), 4),
                    "cache_page": round(median_ms(pages), 4),
                    "l1_page": round(median_ms(page_hits), 4),
                },
                "hot_key": results,
            },
            sort_keys=True,
        )
    )


if __name__ == "__main__":
    main()

"""Stream consumers: records/s of the local consumer vs a raw GetRecords loop on the same
stream; read-path gets/s with and without the periodic read-metrics flush.

Run: .venv/bin/python bench/streams.py [--items 2000] [--rounds 3] [--gets 300]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from _common import MOTO_CAVEAT, Harness, cache_item, harness, print_table, progress

from engine import keys
from engine.documents import Document, parse_document
from engine.sample import sample_documents
from engine.store.objects import ObjectInfo
from engine.streams.config import StreamSettings
from engine.streams.consumer import LocalConsumer
from engine.streams.core import StreamProcessor
from engine.streams.flush import MetricsFlusher
from engine.streams.leases import checkpoint_key, consumer_key
from engine.streams.records import from_stream

RATIO_TARGET = 0.8  # the consumer keeps up with at least 80% of a bare GetRecords loop
FLUSH_OVERHEAD_TARGET = 0.05  # a flush every second costs the read path at most 5%


def item_of(h: Harness, doc: Document, version: int, source: str) -> dict[str, Any]:
    prefix = h.settings.prefixes()[doc.type]
    info = ObjectInfo(keys.s3_key(prefix, doc.id), doc.etag, len(doc.body), datetime.now(UTC))
    return cache_item(h.settings, doc, info, source, version=version)


def load(h: Harness, count: int) -> list[Document]:
    """`count` creates, then half of them updated: ~1.5 × count stream records."""
    docs = [parse_document(raw) for raw in sample_documents(count, seed=11)]
    items = [item_of(h, d, 1, "backfill") for d in docs]
    items += [item_of(h, d, 2, "event") for d in docs[: count // 2]]
    started = time.perf_counter()
    batches = [items[i : i + 25] for i in range(0, len(items), 25)]
    for n, batch in enumerate(batches, 1):
        request: dict[str, Any] = {h.settings.table: [{"PutRequest": {"Item": i}} for i in batch]}
        while request:
            request = dict(
                h.admin.dynamodb.batch_write_item(RequestItems=request).get("UnprocessedItems")
                or {}
            )
        if n % 20 == 0 or n == len(batches):
            progress("cache items", n, len(batches), started)
    return docs


def stream_shard(h: Harness) -> tuple[str, str]:
    arn = h.admin.dynamodb.describe_table(TableName=h.settings.table)["Table"]["LatestStreamArn"]
    streams = h.admin.client("dynamodbstreams")
    (shard,) = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    return arn, shard["ShardId"]


def raw_loop(h: Harness, arn: str, shard: str) -> tuple[int, list[dict[str, Any]]]:
    """A bare GetRecords loop from TRIM_HORIZON to the tip (what any consumer must do)."""
    streams = h.raw.client("dynamodbstreams")
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records: list[dict[str, Any]] = []
    while True:
        response = streams.get_records(ShardIterator=iterator, Limit=1000)
        if not response["Records"]:
            return len(records), records
        records.extend(response["Records"])
        iterator = response["NextShardIterator"]


def consumer_drain(h: Harness, arn: str, shard: str, workdir: str) -> int:
    """`docsync consume --drain` from a fresh start (checkpoint and lease dropped first)."""
    for key in (consumer_key(arn), checkpoint_key(arn, shard)):
        h.admin.dynamodb.delete_item(
            TableName=h.settings.leases_table, Key={"lease_key": {"S": key}}
        )
    config = StreamSettings(analytics_dir=workdir, idle_wait_s=0.0, lease_ttl_s=30.0)
    summary = LocalConsumer(h.settings, config, h.engine.clients).run(drain=True)
    return int(summary.core["records"])


def bench_consumer(h: Harness, rounds: int) -> dict[str, Any]:
    arn, shard = stream_shard(h)
    workdir = tempfile.mkdtemp(prefix="docsync-bench-streams-")
    expected, raw_records = raw_loop(h, arn, shard)  # warm
    consumer_drain(h, arn, shard, workdir)
    rates: dict[str, list[float]] = {"consumer": [], "raw": []}
    calls: dict[str, int] = {"consumer": 0, "raw": 0}
    for r in range(rounds):
        order = ("consumer", "raw") if r % 2 == 0 else ("raw", "consumer")
        for variant in order:
            h.counter.reset()
            h.raw_counter.reset()
            started = time.perf_counter()
            if variant == "raw":
                got = raw_loop(h, arn, shard)[0]
            else:
                got = consumer_drain(h, arn, shard, workdir)
            seconds = time.perf_counter() - started
            assert got == expected, f"{variant} read {got} records, the stream has {expected}"
            rates[variant].append(expected / seconds)
            calls[variant] += (h.counter if variant == "consumer" else h.raw_counter).total()
    started = time.perf_counter()
    core = StreamProcessor(table=h.settings.table)
    core.process(from_stream(r, f"{arn}/{shard}") for r in raw_records)
    cpu = expected / (time.perf_counter() - started)
    consumer, raw = statistics.median(rates["consumer"]), statistics.median(rates["raw"])
    return {
        "records": expected,
        "rounds": rounds,
        "consumer_records_per_s": round(consumer, 1),
        "raw_records_per_s": round(raw, 1),
        "ratio": round(consumer / raw, 4),
        "consumer_aws_calls_per_run": round(calls["consumer"] / rounds, 1),
        "raw_aws_calls_per_run": round(calls["raw"] / rounds, 1),
        "decode_and_process_only_records_per_s": round(cpu, 1),
    }


def bench_reads(h: Harness, docs: list[Document], rounds: int, gets: int) -> dict[str, Any]:
    targets = [(d.type, d.id) for d in docs[:gets]]
    reader = h.engine.reader
    variants: dict[str, float | None] = {
        "no flush": None,
        "flush every 1 s": 1.0,
        "flush every 0.1 s": 0.1,
    }
    for t, i in targets[:20]:
        reader.get(t, i)  # warm
    rates: dict[str, list[float]] = {v: [] for v in variants}
    flushes: dict[str, int] = dict.fromkeys(variants, 0)
    for r in range(rounds):
        names = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name in names:
            interval = variants[name]
            flusher = None
            if interval is not None:
                flusher = MetricsFlusher(
                    h.engine.clients.dynamodb, h.settings.table, reader.stats, interval_s=interval
                ).start()
            started = time.perf_counter()
            for t, i in targets:
                reader.get(t, i)
            seconds = time.perf_counter() - started
            if flusher is not None:
                flusher.stop()
                flushes[name] += flusher.flushes
            else:
                reader.stats.take_delta()  # nothing carried over to the next variant
            rates[name].append(len(targets) / seconds)
    record_ns = _record_cost()
    base = statistics.median(rates["no flush"])
    return {
        "gets_per_round": len(targets),
        "rounds": rounds,
        "variants": {
            name: {
                "gets_per_s": round(statistics.median(rates[name]), 1),
                "overhead": round(1 - statistics.median(rates[name]) / base, 4),
                "flushes": flushes[name],
            }
            for name in variants
        },
        "read_stats_record_ns": record_ns,
    }


def _record_cost(n: int = 200_000) -> float:
    from engine.reader import ReadStats

    stats = ReadStats()
    record: Callable[[str, float], None] = stats.record
    started = time.perf_counter()
    for k in range(n):
        record("hit", float(k % 50))
    return round((time.perf_counter() - started) / n * 1e9, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000, help="cache items created (2000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--gets", type=int, default=300, help="gets per variant per round (300)")
    args = parser.parse_args()

    with harness() as h:
        docs = load(h, args.items)
        consumer = bench_consumer(h, args.rounds)
        reads = bench_reads(h, docs, args.rounds, args.gets)

    print(
        f"\ndocsync stream consumers — {consumer['records']} stream records, {args.rounds} rounds"
    )
    print_table(
        "Reading the whole stream from TRIM_HORIZON (median of rounds)",
        ["variant", "records/s", "AWS calls/run"],
        [
            [
                "local consumer (drain)",
                consumer["consumer_records_per_s"],
                consumer["consumer_aws_calls_per_run"],
            ],
            [
                "raw GetRecords loop",
                consumer["raw_records_per_s"],
                consumer["raw_aws_calls_per_run"],
            ],
            [
                "decode + process only (no I/O)",
                consumer["decode_and_process_only_records_per_s"],
                0,
            ],
        ],
    )
    ok_ratio = consumer["ratio"] >= RATIO_TARGET
    print(
        f"  consumer / raw: {consumer['ratio']:.2f}× (target ≥ {RATIO_TARGET:.2f}:"
        f" {'MET' if ok_ratio else 'NOT MET'})"
    )
    print_table(
        f"Read path: cache-hit gets, 1 thread, {reads['gets_per_round']} per round",
        ["variant", "gets/s", "overhead", "flushes"],
        [
            [name, v["gets_per_s"], f"{v['overhead']:+.1%}", v["flushes"]]
            for name, v in reads["variants"].items()
        ],
    )
    every_second = reads["variants"]["flush every 1 s"]["overhead"]
    ok_flush = every_second <= FLUSH_OVERHEAD_TARGET
    print(
        f"  flush every 1 s: {every_second:+.1%} (target ≤ +{FLUSH_OVERHEAD_TARGET:.0%}:"
        f" {'MET' if ok_flush else 'NOT MET'}); ReadStats.record costs"
        f" {reads['read_stats_record_ns']} ns per get (lock + bucket)"
    )
    print(f"\n{MOTO_CAVEAT}")
    result = {
        "bench": "streams",
        "consumer": consumer,
        "reads": reads,
        "targets": {"consumer_ratio": ok_ratio, "flush_overhead_1s": ok_flush},
        "moto_caveat": MOTO_CAVEAT,
    }
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()

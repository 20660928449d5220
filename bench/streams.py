"""Stream consumers: records/s of the local consumer vs a raw GetRecords loop on the same
stream, and with stream-driven repair + history on vs off; the time from a stuck intent (a
writer that died after its S3 put, its event lost) to its repair, with the consumer polling as
configured; read-path gets/s with and without the periodic read-metrics flush.

Run: .venv/bin/python bench/streams.py [--items 2000] [--rounds 3] [--gets 300] [--stuck 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from _common import MOTO_CAVEAT, Harness, cache_item, harness, print_table, progress

from engine import keys
from engine.app import Engine
from engine.documents import Document, parse_document
from engine.readmetrics.flush import MetricsFlusher
from engine.sample import sample_documents
from engine.settings import StreamSettings
from engine.store.leases import checkpoint_key, consumer_key
from engine.store.objects import ObjectInfo
from engine.streams.consumer import LocalConsumer
from engine.streams.core import StreamProcessor
from engine.streams.records import from_stream

RATIO_TARGET = 0.8  # the consumer keeps up with at least 80% of a bare GetRecords loop
EFFECTS_RATIO_TARGET = 0.8  # repair + history on: at least 80% of the consumer without them
FLUSH_OVERHEAD_TARGET = 0.05  # a flush every second costs the read path at most 5%


def item_of(h: Harness, doc: Document, version: int, source: str) -> dict[str, Any]:
    prefix = h.settings.prefixes[doc.type]
    info = ObjectInfo(keys.s3_key(prefix, doc.id), doc.etag, len(doc.body), datetime.now(UTC))
    return cache_item(h.settings, doc, info, source, version=version)


def load(h: Harness, count: int) -> list[Document]:
    """`count` creates, then half of them updated: ~1.5 × count stream records, each one a
    committed change (the worst case for history: an entry per record)."""
    docs = [parse_document(raw) for raw in sample_documents(count, seed=11)]
    items = [item_of(h, d, 1, "write") for d in docs]
    edited = [
        parse_document(d.as_dict() | {"title": d.title + " (edited)"}) for d in docs[: count // 2]
    ]
    items += [item_of(h, d, 2, "event") for d in edited]
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


def consumer_drain(h: Harness, arn: str, shard: str, workdir: str, effects: bool = False) -> int:
    """`docsync consume --drain` from a fresh start (checkpoint and lease dropped first);
    `effects`: with stream-driven repair and history (the default of `docsync consume`)."""
    for key in (consumer_key(arn), checkpoint_key(arn, shard)):
        h.admin.dynamodb.delete_item(
            TableName=h.settings.leases_table, Key={"lease_key": {"S": key}}
        )
    config = StreamSettings(
        analytics_dir=workdir,
        idle_wait_s=0.0,
        lease_ttl_s=30.0,
        repair=effects,
        history=effects,
    )
    consumer = LocalConsumer(h.settings, config, h.engine.clients, engine=h.engine)
    summary = consumer.run(drain=True)
    return int(summary.core["records"])


def bench_consumer(h: Harness, rounds: int) -> dict[str, Any]:
    arn, shard = stream_shard(h)
    workdir = tempfile.mkdtemp(prefix="docsync-bench-streams-")
    expected, raw_records = raw_loop(h, arn, shard)  # warm
    consumer_drain(h, arn, shard, workdir)
    consumer_drain(h, arn, shard, workdir, effects=True)
    variants = ("consumer", "effects", "raw")
    rates: dict[str, list[float]] = {v: [] for v in variants}
    calls: dict[str, int] = dict.fromkeys(variants, 0)
    for r in range(rounds):
        order = variants if r % 2 == 0 else tuple(reversed(variants))
        for variant in order:
            h.counter.reset()
            h.raw_counter.reset()
            started = time.perf_counter()
            if variant == "raw":
                got = raw_loop(h, arn, shard)[0]
            else:
                got = consumer_drain(h, arn, shard, workdir, effects=variant == "effects")
            seconds = time.perf_counter() - started
            assert got == expected, f"{variant} read {got} records, the stream has {expected}"
            rates[variant].append(expected / seconds)
            calls[variant] += (h.raw_counter if variant == "raw" else h.counter).total()
    started = time.perf_counter()
    core = StreamProcessor(table=h.settings.table)
    core.process(from_stream(r, f"{arn}/{shard}") for r in raw_records)
    cpu = expected / (time.perf_counter() - started)
    consumer, raw = statistics.median(rates["consumer"]), statistics.median(rates["raw"])
    effects = statistics.median(rates["effects"])
    return {
        "records": expected,
        "rounds": rounds,
        "consumer_records_per_s": round(consumer, 1),
        "effects_records_per_s": round(effects, 1),
        "raw_records_per_s": round(raw, 1),
        "ratio": round(consumer / raw, 4),
        "effects_ratio": round(effects / consumer, 4),
        "consumer_aws_calls_per_run": round(calls["consumer"] / rounds, 1),
        "effects_aws_calls_per_run": round(calls["effects"] / rounds, 1),
        "raw_aws_calls_per_run": round(calls["raw"] / rounds, 1),
        "decode_and_process_only_records_per_s": round(cpu, 1),
    }


def bench_repair(h: Harness, stuck: int, grace_s: float = 2.0) -> dict[str, Any]:
    """Writers that die after their S3 put (intent, S3 put, no commit; no listener runs):
    the time from each intent to its repair by a running consumer, polling as configured
    (`idle_wait_s` 1 s, the default), with `inflight_grace_s` = `grace_s`."""
    settings = h.settings.model_copy(update={"inflight_grace_s": grace_s})
    engine = Engine.build(settings)
    workdir = tempfile.mkdtemp(prefix="docsync-bench-repair-")
    consumer = LocalConsumer(
        settings,
        StreamSettings(analytics_dir=workdir, lease_ttl_s=30.0),
        engine.clients,
        engine=engine,
    )
    runner = threading.Thread(target=consumer.run, daemon=True)
    runner.start()
    docs = [parse_document(raw) for raw in sample_documents(stuck, seed=29)]
    intents: dict[str, int] = {}
    for d in docs:
        begun = engine.cache.begin(
            d.type,
            d.id,
            tx=uuid.uuid4().hex,
            etag=d.etag,
            op="put",
            stale_before=datetime.now(UTC) - timedelta(seconds=grace_s),
            expected_version=None,
        )
        engine.objects.put(keys.s3_key(settings.prefixes[d.type], d.id), d.body)
        intents[d.id] = int(begun["p_at"])
        time.sleep(0.05)
    lags: dict[str, float] = {}
    deadline = time.monotonic() + grace_s + 120
    while len(lags) < len(docs) and time.monotonic() < deadline:
        time.sleep(0.5)
        for d in docs:
            if d.id in lags:
                continue
            item = engine.cache.get_item(d.type, d.id) or {}
            if item.get("state") == "live" and not item.get("p_tx"):
                lags[d.id] = (int(item["synced_at"]) - intents[d.id]) / 1000
    consumer.stop.set()
    runner.join(30)
    samples = sorted(lags.values())
    return {
        "stuck": len(docs),
        "repaired": len(samples),
        "grace_s": grace_s,
        "idle_wait_s": 1.0,
        "intent_to_repair_s": {
            "median": round(statistics.median(samples), 3) if samples else None,
            "p99": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 3)
            if samples
            else None,
            "max": round(samples[-1], 3) if samples else None,
        },
        "repairs": dict(consumer.repairs),
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
                flusher = MetricsFlusher(h.engine.cache, reader.stats, interval_s=interval).start()
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
    from engine.readmetrics.stats import ReadStats

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
    parser.add_argument("--stuck", type=int, default=30, help="writers dying after S3 (30)")
    args = parser.parse_args()

    with harness() as h:
        docs = load(h, args.items)
        consumer = bench_consumer(h, args.rounds)
        repair = bench_repair(h, args.stuck)
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
                "local consumer, repair + history on",
                consumer["effects_records_per_s"],
                consumer["effects_aws_calls_per_run"],
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
    ok_effects = consumer["effects_ratio"] >= EFFECTS_RATIO_TARGET
    print(
        f"  repair + history on / off: {consumer['effects_ratio']:.2f}×"
        f" (target ≥ {EFFECTS_RATIO_TARGET:.2f}: {'MET' if ok_effects else 'NOT MET'})"
    )
    lag = repair["intent_to_repair_s"]
    print_table(
        f"Stuck intent → repair ({repair['stuck']} writers died after their S3 put;"
        f" grace {repair['grace_s']} s, consumer polling every {repair['idle_wait_s']} s)",
        ["repaired", "median s", "p99 s", "max s", "outcomes"],
        [[repair["repaired"], lag["median"], lag["p99"], lag["max"], repair["repairs"]]],
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
        "repair": repair,
        "reads": reads,
        "targets": {
            "consumer_ratio": ok_ratio,
            "effects_ratio": ok_effects,
            "flush_overhead_1s": ok_flush,
        },
        "moto_caveat": MOTO_CAVEAT,
    }
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()

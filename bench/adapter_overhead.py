"""What the adapter's per-operation metrics and tracing cost, as a ratio against both off.

Two transports, both reported:
- `canned`: each variant's clients answer from a recording of the same call (engine/recording.py,
  looping) at `before-send`, so nothing but client-side CPU is timed: the strictest ratio
  (on AWS the network adds milliseconds that these microseconds hide in).
- `moto`: the same operation against the embedded moto server, as the other benchmarks run.

Rounds are interleaved (off, metrics, metrics + tracing, in rotating order) and the median
per-operation time of each variant is compared; the rounds' min-max is reported beside it.
Both the wall time and the process's CPU time are taken: on a shared machine the CPU time
is the steadier figure (it includes the span processor's thread). The verdicts are on the
canned transport, both figures. Tracing exports through a BatchSpanProcessor (the SDK's
production processor) to an exporter that drops the spans (the OTLP hop is not timed).

Run alone: .venv/bin/python bench/adapter_overhead.py [--ops 300 --rounds 7] [--kind get]
Quick: --quick (get only, 150 operations × 5 rounds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import harness, print_table, verdict

from engine import tracing
from engine.app import Engine
from engine.documents import Document, parse_document
from engine.recording import Replayer
from engine.sample import sample_documents
from engine.settings import Settings

METRICS_TARGET = 0.03
TRACING_TARGET = 0.10
VARIANTS = ("off", "metrics", "metrics+tracing")


def _provider() -> Any:
    """The SDK's production set-up (a BatchSpanProcessor) over an exporter that drops the
    spans, or None without the `tracing` extra. One per measurement, shut down after it."""
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
        from opentelemetry.sdk.trace.export import SpanExportResult as Result
    except ImportError:
        return None

    class Drop(SpanExporter):
        def export(self, spans: Any) -> Result:
            return Result.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    return provider


def _engines(settings: Settings, recording: Path | None) -> dict[str, Engine]:
    def build(metrics: bool) -> Engine:
        # no token bucket: at its 500 calls/s it would time the limiter, not the client
        update: dict[str, Any] = {
            "aws.metrics": metrics,
            "dynamodb.rps": 1e9,
            "dynamodb.burst": 10**9,
        }
        engine = Engine.build(settings.replace(update))
        if recording is not None:
            replayer = Replayer(recording, loop=True)
            for client in (engine.clients.dynamodb, engine.clients.s3):
                replayer.register(client)
        return engine

    off, on = build(False), build(True)
    return {"off": off, "metrics": on, "metrics+tracing": on}


def _operation(kind: str, doc: Document, fresh: Iterator[Document]) -> Callable[[Engine], None]:
    """A get of the same cached document, or a put of a new one (3 AWS calls: a re-put of
    the same content would stop after the intent)."""
    if kind == "get":
        return lambda e: e.reader.get(doc.type, doc.id) and None
    return lambda e: e.pipeline.put(next(fresh)) and None


def measure(settings: Settings, kind: str, ops: int, rounds: int, canned: bool) -> dict[str, Any]:
    """Median seconds per operation of each variant, and the ratios against `off`.

    Puts on moto are fewer: moto's put slows as its table grows (measured 4 ms → 70 ms over
    7,000 puts), which the rotating order of the variants only partly evens out."""
    if kind == "put" and not canned:
        ops = max(10, ops // 6)
    now = datetime.now(UTC)
    doc = parse_document(sample_documents(1, seed=1, now=now)[0])
    count = 2 + (ops + min(20, ops)) * rounds * len(VARIANTS) if kind == "put" else 0
    fresh = (parse_document(raw) for raw in sample_documents(count, seed=2, now=now)[1:])
    with tempfile.TemporaryDirectory() as tmp:
        recording = None
        seed = Engine.build(settings)
        seed.pipeline.put(doc)  # the cache hit (and, for puts, a first version)
        if canned:
            recording = Path(tmp) / "calls.jsonl"
            recorder = Engine.build(settings.model_copy(update={"record": recording}))
            _operation(kind, doc, fresh)(recorder)
        engines = _engines(settings, recording)
        run = _operation(kind, doc, fresh)
        provider = _provider()
        per_op: dict[str, list[float]] = {v: [] for v in VARIANTS}
        cpu_op: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for r in range(rounds):
            order = VARIANTS[r % 3 :] + VARIANTS[: r % 3]
            for variant in order:
                if variant == "metrics+tracing" and not (provider and tracing.configure(provider)):
                    continue
                engine = engines[variant]
                for _ in range(min(20, ops)):  # warm
                    run(engine)
                started, cpu = time.perf_counter(), time.process_time()
                for _ in range(ops):
                    run(engine)
                per_op[variant].append((time.perf_counter() - started) / ops)
                cpu_op[variant].append((time.process_time() - cpu) / ops)
                if variant == "metrics+tracing":
                    tracing.shutdown()
        if provider is not None:
            provider.shutdown()
    medians = {v: statistics.median(s) for v, s in per_op.items() if s}
    cpu_medians = {v: statistics.median(s) for v, s in cpu_op.items() if s}
    base, cpu_base = medians["off"], cpu_medians["off"]
    return {
        "operation": kind,
        "transport": "canned" if canned else "moto",
        "us_per_op": {v: round(m * 1e6, 1) for v, m in medians.items()},
        # the rounds' fastest and slowest: on a shared machine the spread says how far to
        # trust a ratio of a few per cent
        "spread_us": {
            v: [round(min(s) * 1e6, 1), round(max(s) * 1e6, 1)] for v, s in per_op.items() if s
        },
        "overhead": {v: round(m / base - 1, 4) for v, m in medians.items() if v != "off"},
        "cpu_us_per_op": {v: round(m * 1e6, 1) for v, m in cpu_medians.items()},
        "cpu_overhead": {
            v: round(m / cpu_base - 1, 4) for v, m in cpu_medians.items() if v != "off"
        },
    }


def report(settings: Settings, kind: str, ops: int = 300, rounds: int = 7) -> list[dict[str, Any]]:
    results = [measure(settings, kind, ops, rounds, canned) for canned in (True, False)]
    rows = []
    for r in results:
        us, cpu = r["us_per_op"], r["cpu_us_per_op"]
        rows.append(
            [
                f"{kind} ({r['transport']})",
                us["off"],
                us["metrics"],
                us.get("metrics+tracing", float("nan")),
                f"{r['overhead']['metrics']:+.1%}",
                f"{r['overhead'].get('metrics+tracing', float('nan')):+.1%}",
                f"{r['cpu_overhead']['metrics']:+.1%}",
                f"{r['cpu_overhead'].get('metrics+tracing', float('nan')):+.1%}",
                f"{cpu['off']:.0f}",
                " / ".join(f"{lo:.0f}-{hi:.0f}" for lo, hi in r["spread_us"].values()),
            ]
        )
    print_table(
        f"Adapter overhead on a cache-{'hit get' if kind == 'get' else 'write put'}"
        f" ({rounds} interleaved rounds × {ops})",
        [
            "operation",
            "off µs",
            "metrics µs",
            "+tracing µs",
            "metrics",
            "metrics+tracing",
            "metrics CPU",
            "m+t CPU",
            "off CPU µs",
            "rounds' min-max µs",
        ],
        rows,
    )
    for figure, key in (("wall", "overhead"), ("CPU", "cpu_overhead")):
        canned = results[0][key]
        print(
            f"  canned transport, {figure}: metrics {canned['metrics']:+.1%} (target ≤ +3%:"
            f" {verdict(canned['metrics'] <= METRICS_TARGET)}), metrics+tracing"
            f" {canned.get('metrics+tracing', float('nan')):+.1%} (target ≤ +10%:"
            f" {verdict(canned.get('metrics+tracing', 1.0) <= TRACING_TARGET)})"
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--kind", choices=("get", "put", "both"), default="both")
    parser.add_argument("--quick", action="store_true", help="get only, 150 ops × 5 rounds")
    args = parser.parse_args()
    if args.quick:
        args.ops, args.rounds, args.kind = 150, 5, "get"
    kinds = ("get", "put") if args.kind == "both" else (args.kind,)
    with harness() as h:
        out = {kind: report(h.settings, kind, args.ops, args.rounds) for kind in kinds}
    print(json.dumps({"bench": "adapter_overhead", **out}, sort_keys=True))


if __name__ == "__main__":
    sys.exit(main())

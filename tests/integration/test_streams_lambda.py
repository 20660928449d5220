"""engine/lambdas/stream.py: DynamoDB stream batches (real records read from moto's
stream, and AWS's fixtures) and Kinesis batches, partial batch responses, EMF metrics."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.app import Engine
from engine.aws import AwsClients, CallCounter
from engine.lambdas import runtime as lambda_runtime
from engine.lambdas import stream as lambda_handler
from engine.readmetrics.flush import MetricsFlusher
from engine.settings import Settings, StreamSettings
from engine.streams.analytics import merge_rows
from engine.streams.core import StreamProcessor
from engine.streams.sinks import ANALYTICS, DEAD_LETTER, FileRowSink
from engine.streams.stats import gather
from tests.conftest import FIXTURES
from tests.integration.test_streams_consumer import seven_hits_three_misses, stream_records
from tests.unit.test_streams_core import T0, T1, scripted_batch
from tests.unit.test_streams_kcl import kinesis_payload


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def ttl_event() -> dict[str, Any]:
    """ddb-stream-ttl-remove.json, from our table's stream (AWS's own fixture, ARN rewritten)."""
    event = load("ddb-stream-ttl-remove.json")
    for record in event["Records"]:
        record["eventSourceARN"] = record["eventSourceARN"].replace(
            "Example-Table", "docsync-cache"
        )
    return event


def lambda_shape(record: dict[str, Any], arn: str) -> dict[str, Any]:
    """A GetRecords record as the Lambda event source mapping delivers it."""
    out = copy.deepcopy(record)
    out["dynamodb"]["ApproximateCreationDateTime"] = int(
        record["dynamodb"]["ApproximateCreationDateTime"].timestamp()
    )
    out["eventSourceARN"] = arn
    return out


def emf(out: str) -> dict[str, float]:
    """Metric name → summed value, from the EMF lines a handler printed."""
    totals: dict[str, float] = {}
    for line in out.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = blob[metric["Name"]]
                values = value if isinstance(value, list) else [value]
                totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(values)
    return totals


@pytest.fixture
def counter() -> CallCounter:
    return CallCounter()


@pytest.fixture
def runtime(
    settings: Settings, tmp_path: Path, counter: CallCounter
) -> Iterator[lambda_runtime.StreamRuntime]:
    conf = StreamSettings(analytics_dir=str(tmp_path / "rows"))
    rt = lambda_runtime.build_stream_runtime(settings, conf, counter)
    lambda_runtime.use_stream_runtime(rt)
    yield rt
    lambda_runtime.use_stream_runtime(None)


def rows(tmp_path: Path, kind: str = ANALYTICS) -> list[dict[str, Any]]:
    return list(
        FileRowSink(tmp_path / "rows", "t").read(kind, datetime.now(UTC) - timedelta(days=1))
    )


def test_seven_hits_three_misses_through_the_handler(
    settings: Settings,
    engine: Engine,
    runtime: lambda_runtime.StreamRuntime,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    seven_hits_three_misses(engine)
    MetricsFlusher(engine.cache, engine.reader.stats).flush()
    arn = engine.clients.dynamodb.describe_table(TableName=settings.table)["Table"][
        "LatestStreamArn"
    ]
    records = [lambda_shape(r, arn) for r in stream_records(engine)]
    capsys.readouterr()
    response = lambda_handler.stream_handler({"Records": records}, None)
    assert response == {"batchItemFailures": []}
    summary = runtime.core.summary()
    assert summary["cluster"]["hit_ratio"] == 0.7 and summary["fills"] == 3
    assert summary["writes"] == {"backfill": 3, "write": 7} and summary["creates"] == 10
    metrics = emf(capsys.readouterr().out)
    assert metrics["cluster_hits"] == 7 and metrics["cluster_misses"] == 3
    assert metrics["cache_fills"] == 3 and metrics["document_creates"] == 10
    assert metrics["stream_records"] == len(records)
    assert sum(r["creates"] for r in rows(tmp_path)) == 10


def test_ttl_expiry_counted_and_no_s3_call(
    runtime: lambda_runtime.StreamRuntime, counter: CallCounter, capsys: pytest.CaptureFixture[str]
) -> None:
    event = ttl_event()
    counter.reset()
    assert lambda_handler.stream_handler(event, None) == {"batchItemFailures": []}
    assert runtime.core.totals["ttl_expiries"] == 1
    assert dict(counter.counts) == {}  # no AWS call at all: S3 is left alone
    assert emf(capsys.readouterr().out)["ttl_expiries"] == 1


def test_ttl_expiry_with_the_s3_sink_writes_only_under_the_reserved_prefix(
    settings: Settings, engine: Engine
) -> None:
    counter = CallCounter()
    rt = lambda_runtime.build_stream_runtime(settings, StreamSettings(), counter)
    lambda_runtime.use_stream_runtime(rt)
    try:
        event = ttl_event()
        ttl_doc = copy.deepcopy(event["Records"][0])
        ttl_doc["dynamodb"]["Keys"] = {"pk": {"S": "change#EXP-1"}}
        ttl_doc["dynamodb"]["OldImage"] = {"pk": {"S": "change#EXP-1"}, "state": {"S": "live"}}
        ttl_doc["dynamodb"]["SequenceNumber"] = "1405400000000002063282833"
        event["Records"].append(ttl_doc)
        assert lambda_handler.stream_handler(event, None) == {"batchItemFailures": []}
    finally:
        lambda_runtime.use_stream_runtime(None)
    assert dict(counter.counts) == {"s3.PutObject": 1}
    keys = [info.key for info in engine.objects.list("")]
    assert len(keys) == 1 and keys[0].startswith(f"{settings.reserved_prefix}streams/analytics/")
    assert rt.core.totals["ttl_expiries"] == 2


def batch(n: int = 6) -> list[dict[str, Any]]:
    return scripted_batch()[:n]


def flaky_decode(monkeypatch: pytest.MonkeyPatch, bad: set[str]) -> None:
    """Records whose processing fails (not as malformed input: a transient fault)."""
    from engine.streams.records import from_stream

    def decode(raw: Any, source: str | None = None) -> Any:
        if raw["dynamodb"]["SequenceNumber"] in bad:
            raise RuntimeError("a store failed")
        return from_stream(raw, source)

    monkeypatch.setattr(lambda_handler, "from_stream", decode)


def test_partial_batch_failure_names_the_first_failed_record(
    runtime: lambda_runtime.StreamRuntime, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    records = batch()
    bad = records[2]["dynamodb"]["SequenceNumber"]
    flaky_decode(monkeypatch, {bad})
    response = lambda_handler.stream_handler({"Records": records}, None)
    assert response == {"batchItemFailures": [{"itemIdentifier": bad}]}
    assert runtime.core.totals["records"] == 2  # the two before it; after it: left for later
    monkeypatch.undo()
    retry = lambda_handler.stream_handler({"Records": records[2:]}, None)  # Lambda resumes there
    assert retry == {"batchItemFailures": []}
    again = lambda_handler.stream_handler({"Records": records[2:]}, None)  # and a redelivery
    assert again == {"batchItemFailures": []}
    assert runtime.core.totals["records"] == 6 and runtime.core.totals["duplicates"] == 4
    straight = StreamProcessor(table="docsync-cache")
    from engine.streams.records import from_stream

    straight.process(from_stream(r) for r in records)
    assert merge_rows(rows(tmp_path)) == merge_rows(straight.take_rows())


def test_malformed_records_are_dead_lettered_not_failed(
    runtime: lambda_runtime.StreamRuntime, tmp_path: Path
) -> None:
    records = batch(3)
    broken = copy.deepcopy(records[1])
    broken["eventName"] = "UPSERT"
    response = lambda_handler.stream_handler({"Records": [records[0], broken, records[2]]}, None)
    assert response == {"batchItemFailures": []}
    assert runtime.core.totals["records"] == 2
    (dead,) = rows(tmp_path, DEAD_LETTER)
    assert "eventName" in dead["reason"] and dead["record"]["eventName"] == "UPSERT"


def test_rows_that_cannot_be_stored_fail_the_batch_from_its_start(
    runtime: lambda_runtime.StreamRuntime, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    records = batch()
    sink = runtime.sink

    def broken(kind: str, name: str, rows_: Any) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(sink, "put", broken)
    response = lambda_handler.stream_handler({"Records": records}, None)
    assert response == {
        "batchItemFailures": [{"itemIdentifier": records[0]["dynamodb"]["SequenceNumber"]}]
    }
    monkeypatch.undo()
    assert lambda_handler.stream_handler({"Records": records}, None) == {"batchItemFailures": []}
    assert runtime.core.totals["records"] == 6  # counted once stored
    assert runtime.core.totals["duplicates"] == 0
    emitted = merge_rows(rows(tmp_path))
    assert sum(r["creates"] for r in emitted) == 2 and sum(r["updates"] for r in emitted) == 1


def test_kinesis_handler_for_the_kinesis_destination(runtime: lambda_runtime.StreamRuntime) -> None:
    foreign = load("kinesis-ddb-destination-lambda-event.json")
    assert lambda_handler.kinesis_handler(foreign, None) == {"batchItemFailures": []}
    assert (
        runtime.core.totals["records"] == 2 and runtime.core.totals["ignored"] == 2
    )  # other table
    template = foreign["Records"][0]
    ours = []
    for n, record in enumerate(scripted_batch()):
        item = copy.deepcopy(template)
        item["kinesis"]["sequenceNumber"] = (
            f"4965782840918770152001999524250839011995335832519{n:07d}"
        )
        item["kinesis"]["data"] = base64.b64encode(
            json.dumps(kinesis_payload(record)).encode()
        ).decode()
        ours.append(item)
    assert lambda_handler.kinesis_handler({"Records": ours}, None) == {"batchItemFailures": []}
    summary = runtime.core.summary()
    assert (summary["creates"], summary["updates"], summary["deletes"]) == (2, 2, 1)
    assert summary["cluster"]["hit_ratio"] == 0.7 and summary["ttl_expiries"] == 2


def stats_since(settings: Settings, tmp_path: Path, since: timedelta | datetime) -> dict[str, Any]:
    """`docsync stats --since` over what the runtime's sink holds: a duration back from now,
    or a time (the fixture's records sit 2-3 h back, depending on when the suite started)."""
    conf = StreamSettings(analytics_dir=str(tmp_path / "rows"))
    at = since if isinstance(since, datetime) else datetime.now(UTC) - since
    return gather(settings, conf, AwsClients(settings), at)


def test_stats_since_is_record_time_for_a_backlog_caught_up_late(
    settings: Settings, runtime: lambda_runtime.StreamRuntime, tmp_path: Path
) -> None:
    """A Lambda catching up after an outage processes three-day-old records today: `stats
    --since 4d` counts them (they happened then), `--since 1d` does not, whenever the
    emission was stored."""
    backlog = scripted_batch(shift=-timedelta(days=3))
    assert lambda_handler.stream_handler({"Records": backlog}, None) == {"batchItemFailures": []}
    assert stats_since(settings, tmp_path, timedelta(days=4))["changes"] == {
        "creates": 2,
        "updates": 2,
        "deletes": 1,
    }
    assert stats_since(settings, tmp_path, timedelta(days=1))["changes"] == {
        "creates": 0,
        "updates": 0,
        "deletes": 0,
    }


def test_stats_since_finds_rows_of_a_batch_spanning_days(
    settings: Settings, runtime: lambda_runtime.StreamRuntime, tmp_path: Path
) -> None:
    """One batch whose first record is three days old and whose last ones are recent: the
    recent rows are in range for a `--since` just before them although the batch starts long
    before it."""
    old, recent = scripted_batch(shift=-timedelta(days=3))[:3], scripted_batch()[4:]
    assert lambda_handler.stream_handler({"Records": old + recent}, None) == {
        "batchItemFailures": []
    }
    assert stats_since(settings, tmp_path, T1 - timedelta(minutes=1))["changes"] == {
        "creates": 0,
        "updates": 2,
        "deletes": 1,
    }
    assert stats_since(settings, tmp_path, timedelta(days=4))["changes"]["creates"] == 2


def test_stats_since_for_live_records(
    settings: Settings, runtime: lambda_runtime.StreamRuntime, tmp_path: Path
) -> None:
    assert lambda_handler.stream_handler({"Records": scripted_batch()}, None) == {
        "batchItemFailures": []
    }
    data = stats_since(settings, tmp_path, T0 - timedelta(minutes=1))
    assert data["changes"] == {"creates": 2, "updates": 2, "deletes": 1}
    assert data["ttl_expiries"] == 2 and data["fills"] == 1
    later = stats_since(settings, tmp_path, T1 + timedelta(minutes=2))["changes"]
    assert later == {"creates": 0, "updates": 0, "deletes": 0}


def test_the_batch_spans_are_exported_before_the_handler_returns(
    runtime: lambda_runtime.StreamRuntime,
) -> None:
    """A frozen sandbox would keep spans the batch processor has not sent yet."""
    pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from engine import tracing

    exporter = InMemorySpanExporter()
    tracing.shutdown()
    assert tracing.configure(BatchSpanProcessor(exporter, schedule_delay_millis=600_000))
    try:
        assert lambda_handler.stream_handler(ttl_event(), None) == {"batchItemFailures": []}
        names = [s.name for s in exporter.get_finished_spans()]
    finally:
        tracing.shutdown()
    assert "docsync.stream.batch" in names

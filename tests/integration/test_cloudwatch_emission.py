"""The alarms' figures reach CloudWatch from every mode that produces them (issue 10 §2,
docs/metrics.md): known workloads on moto, then the EMF lines a flush prints (or the
Lambda handler prints) hold exactly the expected values under the contract's namespace and the
one Environment dimension; PutMetricData mode sends the same figures to moto's CloudWatch."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from engine import awsmetrics, cloudwatch
from engine.app import Engine
from engine.cloudwatch import BUFFER
from engine.documents import parse_document
from engine.lambdas import reconcile_tasks
from engine.lambdas import runtime as lambda_runtime
from engine.lambdas import stream as lambda_handler
from engine.reader import Query
from engine.readmetrics.flush import MetricsFlusher
from engine.settings import Settings, StreamSettings
from reconciler import tasks
from reconciler.backfill import backfill
from reconciler.run import Reconciler
from tests.integration.faults import Faults
from tests.integration.test_lambda_handlers import lambda_env, sqs_event  # noqa: F401 (fixture)
from tests.integration.test_listener_convergence import body
from tests.integration.test_streams_consumer import seven_hits_three_misses, stream_records
from tests.integration.test_streams_lambda import lambda_shape
from tests.unit.test_cloudwatch import parse_emf

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch.literals import StatisticType

NS, ENV = "docsync-it", "stack-it"


def contract(settings: Settings, overrides: dict[str, Any] | None = None) -> Settings:
    return settings.replace(
        {"metrics.namespace": NS, "metrics.environment": ENV, **(overrides or {})}
    )


def flushed(settings: Settings) -> dict[str, list[float]]:
    out = io.StringIO()
    cloudwatch.flush(contract(settings), stream=out)
    return parse_emf(out.getvalue(), NS, ENV)


def plant_missing(engine: Engine, n: int) -> None:
    """`n` documents written to S3 by another application: not cached (drift `missing`)."""
    for i in range(n):
        engine.objects.put(f"changes/CW-{i}.json", body(f"CW-{i}", i))


def test_every_get_and_query_of_the_reader_gives_one_query_latency(engine: Engine) -> None:
    for i in range(3):
        engine.pipeline.put(parse_document(body(f"Q-{i}", i)))
    for i in range(3):
        engine.reader.get("change", f"Q-{i}")
    engine.reader.query(Query(types=("change",), limit=2))
    engine.reader.query(Query(types=("change",), customer="nobody"))

    figures = flushed(engine.settings)
    assert set(figures) == {"QueryLatency"}
    assert len(figures["QueryLatency"]) == 5
    assert all(0 < ms < 60_000 for ms in figures["QueryLatency"])


def test_reconcile_runs_emit_drift_found_repaired_and_one_run_each(engine: Engine) -> None:
    plant_missing(engine, 2)
    Reconciler(engine).run("report")
    assert flushed(engine.settings) == {"DriftFound": [2.0], "ReconcileRuns": [1.0]}

    Reconciler(engine).run("repair")
    assert flushed(engine.settings) == {
        "DriftFound": [2.0],
        "DriftRepaired": [2.0],
        "ReconcileRuns": [1.0],
    }

    Reconciler(engine).run("report")
    assert flushed(engine.settings) == {"DriftFound": [0.0], "ReconcileRuns": [1.0]}


def test_a_backfill_is_not_a_reconcile_run(engine: Engine) -> None:
    plant_missing(engine, 2)
    assert backfill(engine).filled == 2
    assert flushed(engine.settings) == {}


def test_shard_tasks_report_drift_and_collect_counts_the_run_once(engine: Engine) -> None:
    plant_missing(engine, 3)
    sent = tasks.enqueue(engine, "repair")
    assert tasks.work(engine) == sent["tasks"] > 1
    assert flushed(engine.settings) == {"DriftFound": [3.0], "DriftRepaired": [3.0]}

    assert tasks.collect(engine, sent["run_id"])["complete"] is True
    assert flushed(engine.settings) == {"ReconcileRuns": [1.0]}


@pytest.fixture
def runtime(settings: Settings, tmp_path: Any) -> Iterator[lambda_runtime.StreamRuntime]:
    conf = StreamSettings(analytics_dir=str(tmp_path / "rows"))
    rt = lambda_runtime.build_stream_runtime(contract(settings), conf)
    lambda_runtime.use_stream_runtime(rt)
    yield rt
    lambda_runtime.use_stream_runtime(None)


def test_the_stream_lambda_prints_cluster_hits_misses_and_iterator_age(
    settings: Settings,
    engine: Engine,
    runtime: lambda_runtime.StreamRuntime,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seven_hits_three_misses(engine)  # 10 gets in this process: 10 QueryLatency too
    MetricsFlusher(engine.cache, engine.reader.stats).flush()
    arn = engine.clients.dynamodb.describe_table(TableName=settings.table)["Table"][
        "LatestStreamArn"
    ]
    records = [lambda_shape(r, arn) for r in stream_records(engine)]
    capsys.readouterr()

    assert lambda_handler.stream_handler({"Records": records}, None) == {"batchItemFailures": []}

    figures = parse_emf(capsys.readouterr().out, NS, ENV)
    assert set(figures) == {"CacheHits", "CacheMisses", "StreamIteratorAge", "QueryLatency"}
    assert figures["CacheHits"] == [7.0] and figures["CacheMisses"] == [3.0]
    assert len(figures["QueryLatency"]) == 10
    (age,) = figures["StreamIteratorAge"]  # one batch, one age
    newest = max(r["dynamodb"]["ApproximateCreationDateTime"] for r in records)
    assert 0 <= age <= (datetime.now(UTC).timestamp() - newest + 1) * 1000
    assert BUFFER.take() == {}  # the handler flushed everything


def test_putmetricdata_sends_the_same_figures_to_cloudwatch(engine: Engine) -> None:
    plant_missing(engine, 2)
    Reconciler(engine).run("repair")
    for i in range(2):
        engine.reader.get("change", f"CW-{i}")
    settings = contract(engine.settings, {"metrics.sink": "putmetricdata"})
    start = datetime.now(UTC) - timedelta(minutes=5)

    sent = cloudwatch.flush(settings, engine.clients)

    assert set(sent) == {"DriftFound", "DriftRepaired", "ReconcileRuns", "QueryLatency"}
    cw = engine.clients.cloudwatch
    listed = cw.list_metrics(Namespace=NS)["Metrics"]
    assert {m["MetricName"] for m in listed} == set(sent)
    assert all(m["Dimensions"] == [{"Name": "Environment", "Value": ENV}] for m in listed)

    def stat(name: str, statistic: StatisticType) -> float:
        points = cw.get_metric_statistics(
            Namespace=NS,
            MetricName=name,
            Dimensions=[{"Name": "Environment", "Value": ENV}],
            StartTime=start,
            EndTime=datetime.now(UTC) + timedelta(minutes=5),
            Period=3600,
            Statistics=[statistic],
        )["Datapoints"]
        return float(sum(p[statistic] for p in points))

    assert stat("DriftFound", "Sum") == 2
    assert stat("DriftRepaired", "Sum") == 2
    assert stat("ReconcileRuns", "Sum") == 1
    assert stat("QueryLatency", "SampleCount") == 2
    assert stat("QueryLatency", "Maximum") == max(sent["QueryLatency"])


@pytest.mark.usefixtures("lambda_env")
def test_the_shard_worker_lambda_prints_its_drift_under_the_functions_environment(
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DOCSYNC_METRICS_NAMESPACE", NS)
    monkeypatch.setenv("DOCSYNC_METRICS_ENVIRONMENT", ENV)  # the template sets the stack name
    plant_missing(engine, 3)
    event = shard_tasks(engine)
    capsys.readouterr()

    assert reconcile_tasks.sqs_handler(event, None) == {"batchItemFailures": []}

    assert parse_emf(capsys.readouterr().out, NS, ENV) == {"DriftFound": [3.0]}


def shard_tasks(engine: Engine) -> dict[str, Any]:
    """The work queue's batch of one report run's shard tasks (the change type)."""
    shards = Reconciler(engine).plan(["change"])
    task = {"kind": "reconcile-shard", "run_id": "r-1", "mode": "report", "of": len(shards)}
    return sqs_event(
        *(
            (f"m-{n}", json.dumps(task | {"index": n, "shard": asdict(shard)}))
            for n, shard in enumerate(shards)
        )
    )


@pytest.mark.usefixtures("lambda_env")
def test_the_shard_worker_lambda_emits_the_capacity_of_the_reconcile_kind(
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The dashboard's capacity widget (`{docsync,service} dynamodb read capacity`) covers the
    shard tasks: their Lambda prints the AWS calls' EMF under service `reconcile-tasks`."""
    monkeypatch.setattr(awsmetrics.EMF, "enabled", True)  # as in Lambda
    plant_missing(engine, 3)
    event = shard_tasks(engine)
    awsmetrics.EMF.take()
    capsys.readouterr()

    assert reconcile_tasks.sqs_handler(event, None) == {"batchItemFailures": []}

    lines = [
        json.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if '"service":"reconcile-tasks"' in line
    ]
    assert len(lines) == 1 and lines[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "docsync"
    assert sum(lines[0]["dynamodb_read_capacity_reconcile"]) > 0  # moto: Query/Scan/GetItem


def test_dynamodb_down_opens_the_breaker_reported_at_every_flush_while_open(
    engine: Engine,
) -> None:
    engine.pipeline.put(parse_document(body("B-1", 1)))
    down = Engine.build(contract(engine.settings, {"breaker.fail_max": 2, "breaker.reset_s": 3600}))
    faults = Faults()
    faults.attach(down.clients.dynamodb)
    faults.fail("dynamodb", "GetItem", times=2)  # two outage errors: the breaker opens
    for _ in range(3):
        assert down.reader.get("change", "B-1").cache == "bypass"  # served from S3

    first = flushed(down.settings)
    assert first.pop("CircuitBreakerOpen") == [1.0]
    assert len(first.pop("QueryLatency")) == 3 and first == {}
    assert flushed(down.settings) == {"CircuitBreakerOpen": [1.0]}  # still open: again

"""engine/lambdas/reconcile.py: the scheduled reconcile Lambda against a moto server, set up
only through DOCSYNC_* as the template sets up the function."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from engine import awsmetrics
from engine.app import Engine
from engine.documents import parse_document
from engine.lambdas import reconcile, runtime
from engine.logs import configure_logging
from engine.sample import sample_documents
from engine.settings import Settings
from reconciler.lock import LeaseLock
from reconciler.schedule import LOCK_NAME


@pytest.fixture
def lambda_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("DOCSYNC_ENDPOINT_URL", str(settings.endpoint_url))
    monkeypatch.setenv("DOCSYNC_AWS_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("DOCSYNC_METRICS_ENVIRONMENT", "stack-x")
    for name in ("POWERTOOLS_DEV", "POWERTOOLS_METRICS_DISABLED", "POWERTOOLS_SERVICE_NAME"):
        monkeypatch.delenv(name, raising=False)
    runtime.reset_engine()
    yield settings
    runtime.reset_engine()
    configure_logging("json", "WARNING")


def plant_missing(engine: Engine, count: int) -> None:
    """Documents in S3 that the cache does not hold (written by another application)."""
    for raw in sample_documents(count, seed=31, days=30):
        doc = parse_document(raw)
        engine.objects.put(f"{engine.settings.prefixes[doc.type]}{doc.id}.json", doc.body)


def emf(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if '"_aws"' in line]


def figures(blobs: list[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for blob in blobs:
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == "docsync"
            assert directive["Dimensions"] == [["Environment"]]  # the alarms' one dimension set
            for metric in directive["Metrics"]:
                value = blob[metric["Name"]]
                out[metric["Name"]] = out.get(metric["Name"], 0) + (
                    sum(value) if isinstance(value, list) else value
                )
        assert blob["Environment"] == "stack-x"
    return out


def test_report_run_saves_a_report_and_emits_the_contract_metrics(
    lambda_env: Settings, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    plant_missing(engine, 3)
    capsys.readouterr()
    result = reconcile.handler({"mode": "report"}, None)
    assert result["ran"] is True and result["counts"]["missing"] == 3
    assert result["remaining"] == 3
    assert figures(emf(capsys.readouterr().out)) == {"ReconcileRuns": 1, "DriftFound": 3}
    reports = [i.key for i in engine.objects.list(f"{lambda_env.reserved_prefix}reports/")]
    assert any(k.endswith("-report.json") for k in reports), reports
    assert list(engine.cache.scan_all()) == []  # a report repairs nothing


def test_repair_run_fixes_drift_and_counts_it(
    lambda_env: Settings, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    plant_missing(engine, 2)
    capsys.readouterr()
    result = reconcile.handler({"mode": "repair"}, None)
    assert result["repaired"]["missing"] == 2 and result["remaining"] == 0
    assert figures(emf(capsys.readouterr().out)) == {
        "ReconcileRuns": 1,
        "DriftFound": 2,
        "DriftRepaired": 2,
    }
    assert reconcile.handler({"mode": "report"}, None)["counts"].get("missing", 0) == 0


def test_a_lease_held_elsewhere_means_no_run_and_no_metric(
    lambda_env: Settings, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    plant_missing(engine, 1)
    other = LeaseLock(engine.clients.dynamodb, lambda_env.leases_table, LOCK_NAME, 60)
    assert other.try_acquire()
    capsys.readouterr()
    result = reconcile.handler({"mode": "repair"}, None)
    assert result == {"mode": "repair", "ran": False, "reason": "another reconcile holds the lease"}
    assert emf(capsys.readouterr().out) == []
    other.release()
    assert reconcile.handler({"mode": "repair"}, None)["ran"] is True


def test_enqueue_fans_the_run_out_as_shard_tasks(lambda_env: Settings, engine: Engine) -> None:
    result = reconcile.handler({"mode": "report", "enqueue": True}, None)
    sqs = engine.clients.sqs
    url = sqs.get_queue_url(QueueName=lambda_env.work_queue)["QueueUrl"]
    depth = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert result["enqueued"]["tasks"] == int(depth["Attributes"]["ApproximateNumberOfMessages"])
    assert result["enqueued"]["tasks"] > 0


def test_a_bad_mode_is_refused_with_its_name(lambda_env: Settings) -> None:
    with pytest.raises(ValueError, match="'fix' is not one of report, repair"):
        reconcile.handler({"mode": "fix"}, None)


def test_the_run_emits_its_capacity_for_the_dashboard(
    lambda_env: Settings,
    engine: Engine,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The dashboard's widget searches `{docsync,service} dynamodb read capacity`: the reconcile
    Lambda's line carries it for the reconcile kind, as the listener's and the stream's do."""
    monkeypatch.setattr(awsmetrics.EMF, "enabled", True)  # as in Lambda
    awsmetrics.EMF.take()
    plant_missing(engine, 3)
    capsys.readouterr()
    assert reconcile.handler({"mode": "repair"}, None)["repaired"]["missing"] == 3
    lines = [b for b in emf(capsys.readouterr().out) if b.get("service") == "reconcile"]
    assert len(lines) == 1 and lines[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "docsync"
    # moto answers GetItem, PutItem, Query, Scan and UpdateItem with ConsumedCapacity (not
    # TransactWriteItems): the run's reads and lease writes are counted, under its kind.
    assert sum(lines[0]["dynamodb_read_capacity_reconcile"]) > 0
    assert awsmetrics.EMF.take() == {}  # flushed: the next invocation starts from zero

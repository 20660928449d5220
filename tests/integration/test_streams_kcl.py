"""The KCL path end to end without the daemon: `python -m engine.streams.kcl` in a subprocess
speaking the MultiLang protocol on stdin/stdout, fed with Kinesis-destination payloads made
from the real records of moto's stream; and `init --kinesis`'s infrastructure method."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.stub import Stubber

from engine.app import Engine
from engine.aws import AwsClients
from engine.infra import Infrastructure
from engine.local_moto import TEST_CREDENTIALS
from engine.readmetrics.flush import MetricsFlusher
from engine.settings import Settings
from engine.streams.analytics import merge_rows
from engine.streams.sinks import ANALYTICS, DEAD_LETTER, FileRowSink
from tests.integration.test_streams_consumer import seven_hits_three_misses, stream_records


def destination_payload(record: dict[str, Any], table: str) -> dict[str, Any]:
    """What the table's Kinesis Data Streams destination writes for a stream record."""
    body = {
        k: v for k, v in record["dynamodb"].items() if k not in ("SequenceNumber", "StreamViewType")
    }
    body["ApproximateCreationDateTime"] = int(
        record["dynamodb"]["ApproximateCreationDateTime"].timestamp() * 1000
    )
    return {
        "awsRegion": "us-east-1",
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "userIdentity": None,
        "recordFormat": "application/json",
        "tableName": table,
        "dynamodb": body,
        "eventSource": "aws:dynamodb",
    }


def test_kcl_process_over_real_stream_records(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    seven_hits_three_misses(engine)
    MetricsFlusher(engine.cache, engine.reader.stats).flush()
    payloads = [destination_payload(r, settings.table) for r in stream_records(engine)]
    records = [
        {
            "action": "record",
            "data": base64.b64encode(json.dumps(p).encode()).decode(),
            "partitionKey": "k",
            "sequenceNumber": str(49_000_000 + n),
            "subSequenceNumber": 0,
            "approximateArrivalTimestamp": 1_795_000_000_000,
        }
        for n, p in enumerate(payloads)
    ]
    records.append(dict(records[0], data="bWVvdw==", sequenceNumber="49999999"))  # not JSON
    half = len(records) // 2
    lines = [
        {
            "action": "initialize",
            "shardId": "shardId-000000000000",
            "sequenceNumber": None,
            "subSequenceNumber": None,
        },
        {"action": "processRecords", "millisBehindLatest": 250, "records": records[:half]},
        {"action": "processRecords", "millisBehindLatest": 0, "records": records[half:]},
        {"action": "shutdownRequested"},
        {"action": "checkpoint", "sequenceNumber": None, "subSequenceNumber": None},
    ]
    env = (
        os.environ
        | TEST_CREDENTIALS
        | {
            "DOCSYNC_ENDPOINT_URL": settings.endpoint_url or "",
            "DOCSYNC_AWS_MAX_ATTEMPTS": "2",
            "DOCSYNC_STREAMS_ANALYTICS_DIR": str(tmp_path / "rows"),
            "DOCSYNC_STREAMS_CHECKPOINT_INTERVAL_S": "3600",
        }
    )
    proc = subprocess.run(
        [sys.executable, "-m", "engine.streams.kcl"],
        input="".join(json.dumps(m) + "\n" for m in lines),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert out == [
        {"action": "status", "responseFor": "initialize"},
        {"action": "status", "responseFor": "processRecords"},
        {"action": "status", "responseFor": "processRecords"},
        {"action": "checkpoint", "sequenceNumber": "49999999", "subSequenceNumber": 0},
        {"action": "status", "responseFor": "shutdownRequested"},
    ]
    sink = FileRowSink(tmp_path / "rows", "test")
    since = datetime.now(UTC) - timedelta(hours=1)
    merged = merge_rows(sink.read(ANALYTICS, since))
    assert sum(r["creates"] for r in merged) == 10 and sum(r["fills"] for r in merged) == 3
    assert sum(r["writes"].get("write", 0) for r in merged) == 7
    (dead,) = list(sink.read(DEAD_LETTER, since))
    assert dead["sequence"] == "49999999" and dead["driver"] == "kcl"


def test_enable_kinesis_destination_on_moto_reports_what_it_cannot(settings: Settings) -> None:
    clients = AwsClients(settings)
    report = Infrastructure(settings, clients).enable_kinesis_destination(shards=2)
    rows = {r["kind"]: r for r in report.resources}
    assert rows["kinesis-stream"]["status"] == "created"
    assert rows["table-kinesis-destination"]["status"] == "unsupported"
    summary = clients.client("kinesis").describe_stream_summary(StreamName="docsync-cache-changes")
    assert summary["StreamDescriptionSummary"]["OpenShardCount"] == 2
    again = Infrastructure(settings, clients).enable_kinesis_destination()
    assert again.resources[0]["status"] == "exists"


def test_enable_kinesis_destination_as_on_aws(settings: Settings) -> None:
    """DynamoDB's side stubbed with AWS's response shapes (moto does not implement it)."""
    clients = AwsClients(settings)
    arn = "arn:aws:kinesis:us-east-1:123456789012:stream/docsync-cache-changes"
    stub = Stubber(clients.dynamodb)
    stub.add_response(
        "describe_kinesis_streaming_destination",
        {"TableName": settings.table, "KinesisDataStreamDestinations": []},
        {"TableName": settings.table},
    )
    stub.add_response(
        "enable_kinesis_streaming_destination",
        {"TableName": settings.table, "StreamArn": arn, "DestinationStatus": "ENABLING"},
        {
            "TableName": settings.table,
            "StreamArn": arn,
            "EnableKinesisStreamingConfiguration": {
                "ApproximateCreationDateTimePrecision": "MILLISECOND"
            },
        },
    )
    stub.add_response(
        "describe_kinesis_streaming_destination",
        {
            "TableName": settings.table,
            "KinesisDataStreamDestinations": [{"StreamArn": arn, "DestinationStatus": "ACTIVE"}],
        },
        {"TableName": settings.table},
    )
    with stub:
        first = Infrastructure(settings, clients).enable_kinesis_destination()
        second = Infrastructure(settings, clients).enable_kinesis_destination()
    stub.assert_no_pending_responses()
    assert [r["status"] for r in first.resources] == ["created", "created"]
    assert [r["status"] for r in second.resources] == ["exists", "exists"]

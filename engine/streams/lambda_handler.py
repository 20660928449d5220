"""AWS Lambda handlers for the stream consumers: DynamoDB stream batches (`stream_handler`)
and, for the table's Kinesis Data Streams destination, Kinesis batches (`kinesis_handler`).

Event source mappings need `FunctionResponseTypes: [ReportBatchItemFailures]`. A stream is
ordered, so after the first failed record the rest of the batch is left alone, and the
response names only that record's sequence number: Lambda resumes there. Undecodable records
are dead-lettered (S3, reserved prefix) and do not stop the shard.

Analytics are exactly once in effect under retries. The rows of a batch are those of its
records before the first failure, computed from the batch alone (not from what this container
saw before), and stored before the handler returns as one object whose identity is where
the batch starts (`batch_name`). A batch delivered again after a failure, a timeout or a crash
(in any container, whole or bisected) starts at the same record and supersedes that object;
the batch after a partial failure starts at the failed record, another identity, and holds
only records not stored before. If the rows cannot be stored the whole batch is reported failed. Metrics go
out as CloudWatch EMF lines, each record counted once per container. Settings come from
DOCSYNC_* / DOCSYNC_STREAMS_* variables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import Metrics, MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from loguru import logger

from engine import awsmetrics
from engine.aws import AwsClients, CallCounter
from engine.awsmetrics import kind_of
from engine.logs import configure_logging
from engine.settings import Settings, load_settings
from engine.streams.config import StreamSettings, load_stream_settings
from engine.streams.core import Derived, StreamProcessor
from engine.streams.exceptions import MalformedRecordError
from engine.streams.exporters import to_emf
from engine.streams.records import (
    ChangeRecord,
    from_kinesis_lambda,
    from_stream,
    sequence_int,
)
from engine.streams.sinks import (
    ANALYTICS,
    DEAD_LETTER,
    RowSink,
    build_sink,
    emission_name,
    fresh_name,
)

metrics = Metrics(namespace="docsync", service="streams")


class SkippedAfterFailureError(Exception):
    """A record after a failed one: Lambda resumes from the failure, so it waits till then."""


@dataclass
class Runtime:
    """What survives between invocations of one container."""

    settings: Settings
    core: StreamProcessor
    sink: RowSink


_runtime: Runtime | None = None


def build_runtime(
    settings: Settings, config: StreamSettings, counter: CallCounter | None = None
) -> Runtime:
    clients = AwsClients(settings, counter)
    core = StreamProcessor(
        table=settings.table, window_s=config.window_s, dedupe_capacity=config.dedupe_capacity
    )
    return Runtime(settings, core, build_sink(settings, config, clients, producer="lambda"))


def runtime() -> Runtime:
    global _runtime  # noqa: PLW0603 - one runtime per Lambda container, built on first use
    if _runtime is None:
        settings = load_settings()
        configure_logging("json", settings.log_level)
        _runtime = build_runtime(settings, load_stream_settings(settings.config_file))
    return _runtime


def use_runtime(value: Runtime | None) -> None:
    """For tests: a given runtime, or None to build one from the environment again."""
    global _runtime  # noqa: PLW0603
    _runtime = value


def batch_name(
    records: Sequence[Mapping[str, Any]],
    changes: Sequence[ChangeRecord],
    identifier: Callable[[Mapping[str, Any]], str],
) -> str | None:
    """The sink name of a batch's rows, stored now: its identity is its first record
    (stream, event id, sequence number). Deliberately not its end, so that every retry from
    the same start, a bisected half included, supersedes what an earlier attempt stored.
    None when nothing in it decoded (no rows)."""
    if not records or not changes:
        return None
    first = records[0]
    return emission_name(
        datetime.now(UTC),
        "lambda",
        str(first.get("eventSourceARN", "")),
        str(first.get("eventID", "")),
        identifier(first),
    )


def _store(
    sink: RowSink, name: str | None, rows: list[dict[str, Any]], dead: list[dict[str, Any]]
) -> None:
    if name is None:
        if dead:
            sink.put(DEAD_LETTER, fresh_name("lambda"), dead)
        return
    if dead:
        sink.put(DEAD_LETTER, name, dead)
    sink.put(ANALYTICS, name, rows)  # even empty: it supersedes an earlier attempt


@kind_of("stream", "docsync.stream.batch", ("event",))
def _handle(
    event: dict[str, Any],
    context: Any,
    event_type: EventType,
    decode: Callable[[Mapping[str, Any]], ChangeRecord],
    identifier: Callable[[Mapping[str, Any]], str],
) -> dict[str, Any]:
    rt = runtime()
    scratch = rt.core.fresh()  # this batch's rows, from its records alone
    changes: list[ChangeRecord] = []
    dead: list[dict[str, Any]] = []
    failed: list[bool] = []

    def record_handler(record: Any) -> None:
        if failed:
            raise SkippedAfterFailureError(identifier(record.raw_event))
        raw = record.raw_event
        try:
            change = decode(raw)
            scratch.process([change])
        except MalformedRecordError as exc:
            logger.bind(op="streams.lambda", record=identifier(raw)).warning("malformed: {}", exc)
            dead.append({"reason": str(exc), "record": raw, "driver": "lambda"})
            return
        except Exception:
            failed.append(True)
            raise
        changes.append(change)

    records = event.get("Records", [])
    try:
        processor = BatchProcessor(event_type=event_type, raise_on_entire_batch_failure=False)
        response: Any = process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
        reported: list[dict[str, str]] = response.get("batchItemFailures") or []
        failures = [f["itemIdentifier"] for f in reported]
        if failed:  # the failed record may have left a trace: the rows of those before it
            scratch = rt.core.fresh()
            scratch.process(changes)
        batch = Derived()
        try:
            _store(rt.sink, batch_name(records, changes, identifier), scratch.take_rows(), dead)
        except Exception as exc:
            logger.bind(op="streams.lambda").error("rows not stored; batch retried: {}", exc)
            failures = [identifier(r) for r in records[:1]]
        else:
            batch = rt.core.process(changes)  # counted once stored (and once per container)
            rt.core.take_rows()  # its own rows are not the ones stored: drop them
        to_emf(metrics, batch)
        metrics.add_metric(name="stream_malformed", unit=MetricUnit.Count, value=len(dead))
        metrics.add_metric(name="stream_failed", unit=MetricUnit.Count, value=len(failures))
        first = min(failures, key=sequence_int) if failures else None
        logger.bind(
            op="streams.lambda", records=len(records), counted=batch.records, failed_from=first
        ).info("batch done")
        return {"batchItemFailures": [{"itemIdentifier": first}] if first else []}
    finally:
        awsmetrics.to_emf(metrics)  # the AWS calls' figures
        metrics.flush_metrics()


def _ddb_sequence(raw: Mapping[str, Any]) -> str:
    return str(raw.get("dynamodb", {}).get("SequenceNumber", ""))


def _kinesis_sequence(raw: Mapping[str, Any]) -> str:
    return str(raw.get("kinesis", {}).get("sequenceNumber", ""))


def stream_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """DynamoDB stream event source mapping on the cache table."""
    return _handle(event, context, EventType.DynamoDBStreams, from_stream, _ddb_sequence)


def kinesis_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Kinesis event source mapping on the table's Kinesis Data Streams destination."""
    return _handle(
        event, context, EventType.KinesisDataStreams, from_kinesis_lambda, _kinesis_sequence
    )

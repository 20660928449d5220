"""AWS Lambda handlers for S3 events: direct S3 invocation, and SQS batches with partial
batch responses (Powertools' BatchProcessor). Metrics go out as CloudWatch EMF lines.

Settings come from the function's environment (DOCSYNC_*); the engine is built once per
container. DOCSYNC_DRY_RUN=1 makes every mutating call a logged no-op.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import Metrics, MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from engine import awsmetrics, cloudwatch
from engine.app import Engine
from engine.events.apply import APPLIED, RETRY
from engine.events.parse import ObjectEvent, TestEvent, parse_body, parse_notification
from engine.logs import configure_logging
from engine.settings import load_settings

metrics = Metrics(namespace="docsync", service="listener")
_engine: Engine | None = None


class RetryLaterError(Exception):
    """An event met a fresh in-flight write or a failing store: report the record as failed."""


def engine() -> Engine:
    global _engine  # noqa: PLW0603 - one engine per Lambda container, built on first use
    if _engine is None:
        settings = load_settings()
        configure_logging("json", settings.log_level)
        _engine = Engine.build(settings)
    return _engine


def reset_engine() -> None:
    """For tests: forget the cached engine so new settings take effect."""
    global _engine  # noqa: PLW0603
    _engine = None


def flush_alarm_metrics() -> None:
    """The alarms' figures of this invocation (engine/cloudwatch.py), once the engine exists:
    the one call every docsync Lambda handler makes before it returns."""
    if _engine is not None:
        cloudwatch.flush(_engine.settings, _engine.clients)


def _apply_all(events: list[ObjectEvent]) -> None:
    failures = []
    for event in events:
        outcome = engine().applier.apply(event)
        metrics.add_metric(name=f"events_{outcome}", unit=MetricUnit.Count, value=1)
        if outcome in APPLIED:
            metrics.add_metric(name="events_applied_total", unit=MetricUnit.Count, value=1)
        if outcome in RETRY:
            failures.append(f"{event.key}: {outcome}")
    if failures:
        raise RetryLaterError("; ".join(failures))


def _record_handler(record: SQSRecord) -> None:
    parsed = parse_body(record.body)  # MalformedEventError → failed → redrive → DLQ
    if not isinstance(parsed, TestEvent):
        _apply_all(parsed)


def sqs_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """SQS event source mapping with ReportBatchItemFailures enabled."""
    metrics.add_metric(
        name="messages_received", unit=MetricUnit.Count, value=len(event.get("Records", []))
    )
    try:
        processor = BatchProcessor(event_type=EventType.SQS)
        response = process_partial_response(
            event=event, record_handler=_record_handler, processor=processor, context=context
        )
        return dict(response)
    finally:
        awsmetrics.to_emf(metrics)  # the AWS calls' figures
        metrics.flush_metrics()
        flush_alarm_metrics()


def s3_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Direct S3 → Lambda invocation (asynchronous: an exception makes Lambda retry)."""
    parsed = parse_notification(event)
    count = 0 if isinstance(parsed, TestEvent) else len(parsed)
    metrics.add_metric(name="events_received", unit=MetricUnit.Count, value=count)
    try:
        if not isinstance(parsed, TestEvent):
            _apply_all(parsed)
    finally:
        awsmetrics.to_emf(metrics)  # the AWS calls' figures
        metrics.flush_metrics()
        flush_alarm_metrics()
    return {"events": count}

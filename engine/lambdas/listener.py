"""Lambda handlers for S3 events: direct S3 invocation, and SQS batches with partial batch
responses (Powertools' BatchProcessor). Metrics go out as CloudWatch EMF lines.

The engine comes from the container's runtime (engine/lambdas/runtime.py).
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

from engine import awsmetrics
from engine.app import Engine
from engine.events.apply import APPLIED, RETRY, EventApplier
from engine.events.parse import ObjectEvent, TestEvent, parse_body, parse_notification
from engine.lambdas.runtime import engine, flush_alarm_metrics

metrics = Metrics(namespace="docsync", service="listener")


_applier: tuple[Engine, EventApplier] | None = None


def applier() -> EventApplier:
    """The container's applier, built once from the runtime's engine (again if a test resets
    the engine)."""
    global _applier  # noqa: PLW0603 - one applier per Lambda container, built on first use
    current = engine()
    if _applier is None or _applier[0] is not current:
        _applier = (current, EventApplier.for_engine(current))
    return _applier[1]


class RetryLaterError(Exception):
    """An event met a fresh in-flight write or a failing store: report the record as failed."""


def _apply_all(events: list[ObjectEvent]) -> None:
    failures = []
    for event in events:
        outcome = applier().apply(event)
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

"""Lambda: an SQS event source mapping on the reconcile work queue (partial batch responses);
each message is one shard task (reconciler/tasks.py). The AWS calls' figures go out as EMF
(service "reconcile-tasks"), as in the scheduled reconcile's handler."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import Metrics
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)

from engine.lambdas.reconcile import flush_aws_metrics
from engine.lambdas.runtime import engine, flush_alarm_metrics
from reconciler.tasks import run_task

metrics = Metrics(namespace="docsync", service="reconcile-tasks")


def sqs_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The work queue's batch: each record is a shard task run against the container's engine."""
    processor = BatchProcessor(event_type=EventType.SQS)
    try:
        response = process_partial_response(
            event=event,
            record_handler=lambda record: run_task(engine(), record.body),
            processor=processor,
            context=context,
        )
    finally:
        flush_aws_metrics(metrics)
        flush_alarm_metrics()
    return dict(response)

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
only records not stored before. If the rows cannot be stored the whole batch is reported
failed. Metrics go out as CloudWatch EMF lines, each record counted once per container.
Settings come from DOCSYNC_* / DOCSYNC_STREAMS_* variables.

Repair and history (engine/streams/effects.py), from the batch alone, as for the rows. The
history entries of the stored records are written with the rows. A pending key whose deadline
passes within `lambda_repair_wait_s` (and the invocation's remaining time) is waited for and
repaired here (a key whose intent the table no longer holds, committed or rolled back by now,
is simply dropped: one GetItem). One further off is a delayed retry: the batch reports a
failure at that key's record, so Lambda delivers it again (with what follows) and no key is
forgotten, whatever container gets it. That record is not counted now, so nothing is counted
twice. A later batch could not be relied on instead: a container keeps nothing that another
one would see. Set the mapping's MaximumRetryAttempts (if any) above
inflight_grace_s / lambda_repair_wait_s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import Metrics, MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from loguru import logger

from engine import awsmetrics, cloudwatch, tracing
from engine.awsmetrics import kind_of
from engine.lambdas.runtime import StreamRuntime, stream_runtime
from engine.store.item import now_ms
from engine.streams.core import Derived, StreamProcessor
from engine.streams.exceptions import MalformedRecordError
from engine.streams.exporters import to_cloudwatch, to_emf
from engine.streams.history import history_entry
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
    emission_name,
    fresh_name,
)

metrics = Metrics(namespace="docsync", service="streams")


class SkippedAfterFailureError(Exception):
    """A record after a failed one: Lambda resumes from the failure, so it waits till then."""


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
    rt = stream_runtime()
    scratch = rt.for_batch()  # this batch's rows, from its records alone
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
            scratch = rt.for_batch()
            scratch.process(changes)
        kept = changes
        retry_at = _settle_pending(rt, scratch, context)
        if retry_at is not None:  # a delayed retry from that record: count only those before
            failures.append(retry_at)
            kept = [c for c in changes if sequence_int(c.sequence) < sequence_int(retry_at)]
            scratch = rt.for_batch()
            scratch.process(kept)
        batch = Derived()
        try:
            _store(rt.sink, batch_name(records, kept, identifier), scratch.take_rows(), dead)
            _record_history(rt, kept)
        except Exception as exc:
            logger.bind(op="streams.lambda").error("rows not stored; batch retried: {}", exc)
            failures = [identifier(r) for r in records[:1]]
        else:
            batch = rt.core.process(kept)  # counted once stored (and once per container)
            rt.core.take_rows()  # its own rows are not the ones stored: drop them
        to_emf(metrics, batch)
        to_cloudwatch(batch)
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
        cloudwatch.flush(rt.settings, rt.clients)


def _settle_pending(rt: StreamRuntime, scratch: StreamProcessor, context: Any) -> str | None:
    """Repair the batch's pending keys that are due, waiting (bounded) for those due soon;
    the sequence number to retry from if some key is further off (None: none is)."""
    pending = scratch.pending
    if rt.effects.repairer is None or pending is None or not len(pending):
        return None
    budget_s = rt.repair_wait_s
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        budget_s = min(budget_s, max(0.0, remaining() / 1000 - 5.0))
    give_up = time.monotonic() + budget_s
    rt.effects.repair(scratch)
    for key in [k for k in pending.entries() if rt.effects.repairer.resolved(k)]:
        pending.done(key)  # its commit is in the table already (the next batch shows it)
    while len(pending):
        rt.effects.repair(scratch)
        nxt = pending.next_due_ms()
        if nxt is None:
            return None
        wait_s = max(0.0, (nxt - now_ms()) / 1000)
        if time.monotonic() + wait_s > give_up:
            break
        time.sleep(min(wait_s, 1.0) if wait_s else 0.05)
    oldest = pending.oldest()
    return min(oldest.values(), key=sequence_int) if oldest else None


def _record_history(rt: StreamRuntime, kept: Sequence[ChangeRecord]) -> None:
    batch = rt.batch
    if rt.effects.history is None or batch is None or batch.history_days is None:
        return
    entries = [e for c in kept if (e := history_entry(c, batch.history_days)) is not None]
    rt.effects.record(Derived(history=entries), rt.settings.dry_run)


def _ddb_sequence(raw: Mapping[str, Any]) -> str:
    return str(raw.get("dynamodb", {}).get("SequenceNumber", ""))


def _kinesis_sequence(raw: Mapping[str, Any]) -> str:
    return str(raw.get("kinesis", {}).get("sequenceNumber", ""))


def stream_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """DynamoDB stream event source mapping on the cache table."""
    try:
        return _handle(event, context, EventType.DynamoDBStreams, from_stream, _ddb_sequence)
    finally:
        tracing.flush()  # the batch's span has ended: sent before the sandbox freezes


def kinesis_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Kinesis event source mapping on the table's Kinesis Data Streams destination."""
    try:
        return _handle(
            event, context, EventType.KinesisDataStreams, from_kinesis_lambda, _kinesis_sequence
        )
    finally:
        tracing.flush()

"""engine/streams/kcl.py without amazon-kclpy: the MultiLang protocol over the messages the
daemon sends (tests/fixtures/kcl-multilang-messages.json), and the v3 processor over the core
with Kinesis-destination payloads of a scripted workload."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest

from engine.streams.core import StreamProcessor
from engine.streams.kcl import DocsyncRecordProcessor
from engine.streams.multilang import MultiLangProcess
from engine.streams.sinks import ANALYTICS, DEAD_LETTER, MemorySink, identity_of
from tests.conftest import FIXTURES
from tests.unit.test_streams_core import scripted_batch

MESSAGES: dict[str, Any] = json.loads((FIXTURES / "kcl-multilang-messages.json").read_text())


def kinesis_payload(record: dict[str, Any], table: str = "docsync-cache") -> dict[str, Any]:
    """A DynamoDB stream record (Lambda shape) as Kinesis Data Streams for DynamoDB writes it."""
    body = dict(record["dynamodb"])
    body["ApproximateCreationDateTime"] = int(body["ApproximateCreationDateTime"]) * 1000
    for name in ("SequenceNumber", "StreamViewType"):
        body.pop(name)
    return {
        "awsRegion": "us-east-1",
        "eventID": f"uuid-{record['dynamodb']['SequenceNumber']}",
        "eventName": record["eventName"],
        "userIdentity": record.get("userIdentity"),
        "recordFormat": "application/json",
        "tableName": table,
        "dynamodb": body,
        "eventSource": "aws:dynamodb",
    }


def process_records_message(payloads: list[dict[str, Any]], first_seq: int = 100) -> str:
    records = [
        {
            "action": "record",
            "data": base64.b64encode(json.dumps(p).encode()).decode(),
            "partitionKey": "pk",
            "sequenceNumber": str(first_seq + n),
            "subSequenceNumber": 0,
            "approximateArrivalTimestamp": 1476889707000,
        }
        for n, p in enumerate(payloads)
    ]
    return json.dumps({"action": "processRecords", "millisBehindLatest": 1500, "records": records})


def run(lines: list[str], processor: Any) -> list[dict[str, Any]]:
    out = io.StringIO()
    MultiLangProcess(processor, io.StringIO("\n".join(lines) + "\n"), out).run()
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def make(interval_s: float = 3600.0, **kwargs: Any) -> tuple[DocsyncRecordProcessor, MemorySink]:
    sink = MemorySink()
    core = StreamProcessor(table="docsync-cache", window_s=60)
    return DocsyncRecordProcessor(core, sink, checkpoint_interval_s=interval_s, **kwargs), sink


def test_fixture_messages_acknowledged_and_shard_end_checkpointed() -> None:
    processor, sink = make()
    replies = run(
        [
            json.dumps(MESSAGES["initialize"]),
            json.dumps(MESSAGES["processRecords"]),  # its one record is "meow": not a change
            json.dumps(MESSAGES["shardEnded"]),
            json.dumps(MESSAGES["checkpoint"]),  # the daemon's reply to our request
        ],
        processor,
    )
    assert replies == [
        {"action": "status", "responseFor": "initialize"},
        {"action": "status", "responseFor": "processRecords"},
        {"action": "checkpoint", "sequenceNumber": None, "subSequenceNumber": None},
        {"action": "status", "responseFor": "shardEnded"},
    ]
    assert processor.shard_id == "shardId-123"
    (dead,) = sink.rows[DEAD_LETTER]
    assert dead["sequence"] == "456" and dead["data"] == "bWVvdw==" and "JSON" in dead["reason"]
    assert processor.checkpoints == [(None, None)]


def test_processor_over_the_core_gives_the_exact_figures() -> None:
    processor, sink = make(interval_s=0.0)  # checkpoint after every batch
    payloads = [kinesis_payload(r) for r in scripted_batch()]
    replies = run(
        [
            json.dumps(MESSAGES["initialize"]),
            process_records_message(payloads[:8], first_seq=100),
            json.dumps({"action": "checkpoint", "sequenceNumber": "107", "subSequenceNumber": 0}),
            process_records_message(payloads[8:], first_seq=108),
            json.dumps({"action": "checkpoint", "sequenceNumber": "114", "subSequenceNumber": 0}),
            json.dumps(MESSAGES["shutdownRequested"]),
            json.dumps({"action": "checkpoint", "sequenceNumber": None, "subSequenceNumber": None}),
        ],
        processor,
    )
    requests = [r for r in replies if r["action"] == "checkpoint"]
    assert requests == [
        {"action": "checkpoint", "sequenceNumber": "107", "subSequenceNumber": 0},
        {"action": "checkpoint", "sequenceNumber": "114", "subSequenceNumber": 0},
        {"action": "checkpoint", "sequenceNumber": None, "subSequenceNumber": None},
    ]
    summary = processor.core.summary()
    assert (summary["creates"], summary["updates"], summary["deletes"]) == (2, 2, 1)
    assert summary["ttl_expiries"] == 2 and summary["fills"] == 1
    assert summary["cluster"]["hits"] == 7 and summary["cluster"]["hit_ratio"] == 0.7
    assert sum(r["creates"] for r in sink.rows[ANALYTICS]) == 2
    assert DEAD_LETTER not in sink.rows


def test_lease_lost_drops_pending_work_and_never_checkpoints() -> None:
    processor, sink = make()
    payloads = [kinesis_payload(r) for r in scripted_batch()]
    replies = run(
        [
            json.dumps(MESSAGES["initialize"]),
            process_records_message(payloads),
            json.dumps(MESSAGES["leaseLost"]),
        ],
        processor,
    )
    assert [r["action"] for r in replies] == ["status"] * 3
    assert processor.lost and processor.checkpoints == [] and sink.rows == {}
    # its successor replays from the last checkpoint: this process must not have counted them
    assert processor.core.take_rows() == []


def test_checkpoint_errors_retried_when_retryable_only() -> None:
    slept: list[float] = []
    processor, _ = make(sleep=slept.append)
    throttled = {"action": "checkpoint", "sequenceNumber": None, "subSequenceNumber": None}
    replies = run(
        [
            json.dumps(MESSAGES["initialize"]),
            json.dumps(MESSAGES["shutdownRequested"]),
            json.dumps(throttled | {"error": "ThrottlingException"}),
            json.dumps(throttled),
            json.dumps(MESSAGES["shardEnded"]),
            json.dumps(throttled | {"error": "InvalidStateException"}),
        ],
        processor,
    )
    assert [r["action"] for r in replies].count("checkpoint") == 3
    assert len(slept) == 1  # one retry after the throttle, none after InvalidStateException
    assert processor.checkpoints == [(None, None)]
    assert replies[-1] == {"action": "status", "responseFor": "shardEnded"}


def test_rows_not_stored_means_no_checkpoint() -> None:
    class Broken(MemorySink):
        def put(self, kind: str, name: str, rows: Any) -> str:
            raise OSError("disk full")

    core = StreamProcessor(table="docsync-cache")
    processor = DocsyncRecordProcessor(core, Broken(), checkpoint_interval_s=0.0)
    payloads = [kinesis_payload(r) for r in scripted_batch()]
    replies = run(
        [json.dumps(MESSAGES["initialize"]), process_records_message(payloads)], processor
    )
    assert all(r["action"] == "status" for r in replies) and processor.checkpoints == []
    assert sum(r["creates"] for r in core.take_rows()) == 2  # kept for the next checkpoint


@pytest.mark.parametrize("line", ['{"action": "dance"}', "not json", '{"action": "initialize"}'])
def test_unknown_or_broken_messages_do_not_stop_the_processor(line: str) -> None:
    processor, _ = make()
    replies = run([line, json.dumps(MESSAGES["initialize"])], processor)
    assert replies[-1] == {"action": "status", "responseFor": "initialize"}
    assert processor.shard_id == "shardId-123"


# -- exactly once in effect: a replayed worker overwrites what its predecessor stored ---------


class SimulatedCrash(BaseException):
    """The worker process dies here."""


class Checkpointer:
    def __init__(self, fail: BaseException | None = None) -> None:
        self.fail = fail
        self.calls: list[tuple[str | None, int | None]] = []

    def checkpoint(self, sequence_number: str | None = None, sub: int | None = None) -> None:
        if self.fail is not None:
            raise self.fail
        self.calls.append((sequence_number, sub))


SHARD = "shardId-000000000007"


def records_input(payloads: list[dict[str, Any]], first: int, checkpointer: Any) -> Any:
    from engine.streams.multilang import KinesisRecord, ProcessRecordsInput

    records = [
        KinesisRecord(
            data=base64.b64encode(json.dumps(p).encode()).decode(),
            partition_key="pk",
            sequence_number=str(first + n),
            sub_sequence_number=0,
            timestamp_millis=0,
        )
        for n, p in enumerate(payloads)
    ]
    return ProcessRecordsInput(records, 0, checkpointer)


def worker(sink: MemorySink, interval_s: float) -> DocsyncRecordProcessor:
    from engine.streams.multilang import InitializeInput

    processor = DocsyncRecordProcessor(
        StreamProcessor(table="docsync-cache", window_s=60), sink, checkpoint_interval_s=interval_s
    )
    processor.initialize(InitializeInput(SHARD, "TRIM_HORIZON", None))
    return processor


def identities(sink: MemorySink) -> int:
    """How many emissions a reader sees: one per identity, however often it was stored."""
    return len({identity_of(name)[0] for name in sink.objects.get(ANALYTICS, {})})


def straight_rows(payloads: list[dict[str, Any]], first: int = 100) -> list[dict[str, Any]]:
    from engine.streams.analytics import merge_rows
    from engine.streams.records import from_kinesis

    core = StreamProcessor(table="docsync-cache", window_s=60)
    core.process(
        from_kinesis(json.dumps(p).encode(), sequence=str(first + n), source=f"kinesis:{SHARD}")
        for n, p in enumerate(payloads)
    )
    return merge_rows(core.take_rows())


def test_a_worker_replayed_after_a_crash_supersedes_what_it_stored() -> None:
    from engine.streams.analytics import merge_rows
    from engine.streams.multilang import ShutdownRequestedInput

    payloads = [kinesis_payload(r) for r in scripted_batch()]
    sink = MemorySink()
    first = worker(sink, interval_s=0.0)
    with pytest.raises(SimulatedCrash):  # rows stored, checkpoint never made
        first.process_records(records_input(payloads[:10], 100, Checkpointer(SimulatedCrash())))
    assert sink.rows[ANALYTICS]
    successor = worker(sink, interval_s=3600.0)  # replays from the same (no) checkpoint
    checkpointer = Checkpointer()
    successor.process_records(records_input(payloads[:4], 100, checkpointer))
    successor.process_records(records_input(payloads[4:], 104, checkpointer))
    successor.shutdown_requested(ShutdownRequestedInput(checkpointer))
    assert checkpointer.calls == [("114", 0)]
    assert identities(sink) == 1  # superseded, wherever the replay ended
    assert merge_rows(sink.rows[ANALYTICS]) == straight_rows(payloads)


def test_a_replay_with_no_rows_empties_what_its_predecessor_stored() -> None:
    from engine.streams.analytics import merge_rows

    payloads = [kinesis_payload(r) for r in scripted_batch()][3:]  # a metrics flush first
    sink = MemorySink()
    first = worker(sink, interval_s=0.0)
    with pytest.raises(SimulatedCrash):
        first.process_records(records_input(payloads, 100, Checkpointer(SimulatedCrash())))
    successor = worker(sink, interval_s=0.0)
    checkpointer = Checkpointer()
    successor.process_records(records_input(payloads[:1], 100, checkpointer))  # no rows
    successor.process_records(records_input(payloads[1:], 101, checkpointer))
    assert checkpointer.calls == [("100", 0), (str(100 + len(payloads) - 1), 0)]
    assert merge_rows(sink.rows[ANALYTICS]) == straight_rows(payloads)


def test_a_refused_checkpoint_keeps_the_rows_for_the_emission_that_replaces_it() -> None:
    from engine.streams.analytics import merge_rows
    from engine.streams.multilang import CheckpointError

    payloads = [kinesis_payload(r) for r in scripted_batch()]
    sink = MemorySink()
    processor = worker(sink, interval_s=0.0)
    refused = Checkpointer(CheckpointError("InvalidStateException"))
    processor.process_records(records_input(payloads[:8], 100, refused))
    assert processor.checkpoints == [] and identities(sink) == 1
    processor.process_records(records_input(payloads[8:], 108, Checkpointer()))
    assert processor.checkpoints == [("114", 0)]
    assert identities(sink) == 1  # the same start, the same identity: both batches
    assert merge_rows(sink.rows[ANALYTICS]) == straight_rows(payloads)

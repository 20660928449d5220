"""The KCL MultiLang protocol, record processor side, for when amazon-kclpy is not installed
(it does the same in `amazon_kclpy.kcl.KCLProcess`): one JSON message per line on stdin
(initialize, processRecords, leaseLost, shardEnded, shutdownRequested, and the daemon's reply
to each checkpoint request), a `status` line back after each, checkpoint requests on stdout.
The input objects carry the attributes amazon_kclpy.messages exposes, so one processor
works with either.
"""

from __future__ import annotations

import base64
import json
import sys
import traceback
from dataclasses import dataclass
from typing import IO, Any

from loguru import logger


class CheckpointError(Exception):
    """The daemon refused a checkpoint; `value` is its exception's simple name."""

    def __init__(self, value: str) -> None:
        super().__init__(value)
        self.value = value


# -- the daemon's messages (the attributes amazon_kclpy.messages exposes) -------------------------


@dataclass(frozen=True, slots=True)
class InitializeInput:
    shard_id: str
    sequence_number: str | None
    sub_sequence_number: int | None
    action: str = "initialize"


@dataclass(frozen=True, slots=True)
class KinesisRecord:
    data: str  # base64, as the daemon sends it
    partition_key: str
    sequence_number: str
    sub_sequence_number: int | None
    timestamp_millis: int

    @property
    def binary_data(self) -> bytes:
        return base64.b64decode(self.data)


@dataclass(frozen=True, slots=True)
class ProcessRecordsInput:
    records: list[KinesisRecord]
    millis_behind_latest: int | None
    checkpointer: Any
    action: str = "processRecords"


@dataclass(frozen=True, slots=True)
class LeaseLostInput:
    action: str = "leaseLost"


@dataclass(frozen=True, slots=True)
class ShardEndedInput:
    checkpointer: Any
    action: str = "shardEnded"


@dataclass(frozen=True, slots=True)
class ShutdownRequestedInput:
    checkpointer: Any
    action: str = "shutdownRequested"


# -- the MultiLang protocol, for when amazon-kclpy is not installed ---------------------------


class MalformedActionError(Exception):
    pass


class _Checkpointer:
    def __init__(self, process: MultiLangProcess) -> None:
        self._process = process

    def checkpoint(
        self, sequence_number: str | None = None, sub_sequence_number: Any = None
    ) -> None:
        self._process.write(
            {
                "action": "checkpoint",
                "sequenceNumber": sequence_number,
                "subSequenceNumber": sub_sequence_number,
            }
        )
        line = self._process.read_line()
        reply = json.loads(line) if line.strip() else {}
        if reply.get("action") != "checkpoint":
            raise CheckpointError("InvalidStateException")
        if reply.get("error"):
            raise CheckpointError(str(reply["error"]))


def decode_message(message: dict[str, Any], checkpointer: Any) -> Any:
    """A daemon message → the input object the processor method takes."""
    action = message.get("action")
    try:
        if action == "initialize":
            return InitializeInput(
                str(message["shardId"]),
                message.get("sequenceNumber"),
                message.get("subSequenceNumber"),
            )
        if action == "processRecords":
            records = [
                KinesisRecord(
                    data=str(r["data"]),
                    partition_key=str(r.get("partitionKey", "")),
                    sequence_number=str(r["sequenceNumber"]),
                    sub_sequence_number=r.get("subSequenceNumber"),
                    timestamp_millis=int(r.get("approximateArrivalTimestamp", 0)),
                )
                for r in message["records"]
            ]
            return ProcessRecordsInput(records, message.get("millisBehindLatest"), checkpointer)
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedActionError(f"{action}: {exc}") from exc
    if action == "leaseLost":
        return LeaseLostInput()
    if action == "shardEnded":
        return ShardEndedInput(checkpointer)
    if action == "shutdownRequested":
        return ShutdownRequestedInput(checkpointer)
    raise MalformedActionError(f"unknown action {action!r}")


_DISPATCH = {
    "initialize": "initialize",
    "processRecords": "process_records",
    "leaseLost": "lease_lost",
    "shardEnded": "shard_ended",
    "shutdownRequested": "shutdown_requested",
}


class MultiLangProcess:
    """The record processor's side of the protocol (amazon_kclpy.kcl.KCLProcess's job)."""

    def __init__(
        self, processor: Any, input_file: IO[str] = sys.stdin, output_file: IO[str] = sys.stdout
    ) -> None:
        self.processor = processor
        self.input = input_file
        self.output = output_file
        self.checkpointer = _Checkpointer(self)

    def read_line(self) -> str:
        return self.input.readline()

    def write(self, message: dict[str, Any]) -> None:
        # Surrounded by newlines, as amazon-kclpy does, in case something else writes stdout.
        self.output.write(f"\n{json.dumps(message)}\n")
        self.output.flush()

    def handle(self, line: str) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            logger.bind(op="kcl.protocol").error("not a JSON message: {!r}", line[:200])
            return
        action = str(message.get("action", ""))
        try:
            request = decode_message(message, self.checkpointer)
            getattr(self.processor, _DISPATCH[action])(request)
        except Exception:  # like the KCL: report, acknowledge, carry on
            traceback.print_exc(file=sys.stderr)
        self.write({"action": "status", "responseFor": action})

    def run(self) -> None:
        while True:
            line = self.read_line()
            if not line:
                return
            if line.strip():
                self.handle(line)

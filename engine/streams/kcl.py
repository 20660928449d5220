"""KCL 3 record processor for the table's Kinesis Data Streams destination, run by the KCL
MultiLangDaemon (`executableName = python3 -m engine.streams.kcl`, config/kcl.properties).

`DocsyncRecordProcessor` implements amazon-kclpy's v3 `RecordProcessorBase` (initialize,
process_records with periodic checkpoints, lease_lost, shard_ended with its mandatory
checkpoint, shutdown_requested with a checkpoint) over the shared processing core. Each
checkpoint first stores the analytics rows, then asks the daemon to checkpoint. The rows'
identity is the first record after the last checkpoint (`emission_name`), so analytics are
exactly once in effect: a worker that dies (or loses its lease) between the two is replayed
from that checkpoint by its successor, whose first emission starts at the same record and
supersedes the stored one, wherever it ends. For the same reason a refused checkpoint keeps
the rows for the next emission, which supersedes this one.

Repair and history (engine/streams/effects.py) run here too: each batch's history entries are
stored before the batch returns (so before any checkpoint covers them), and pending keys past
their deadline are repaired between batches. The daemon keeps one position per shard, and it
must cover what the analytics rows counted, so it is not held back for pending keys: a key
still pending when this worker dies or loses its lease (an intent younger than the grace,
whose commit never came) is left to the scheduled reconcile, the safety net.

amazon-kclpy is optional (`pip install docsync[kcl]`; its build downloads jars): when it is
missing, engine/streams/multilang.py speaks the daemon's protocol instead. Logs go to stderr:
stdout belongs to the protocol.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from loguru import logger

from engine import metrics
from engine.streams.core import StreamProcessor
from engine.streams.effects import Effects
from engine.streams.exceptions import MalformedRecordError
from engine.streams.exporters import to_cloudwatch, to_prometheus
from engine.streams.records import ChangeRecord, from_kinesis, sequence_int
from engine.streams.sinks import ANALYTICS, DEAD_LETTER, RowSink, emission_name, fresh_name

RETRYABLE = {"ThrottlingException", "KinesisClientLibDependencyException"}


def _kclpy_base() -> type:
    try:
        from amazon_kclpy.v3.processor import RecordProcessorBase  # type: ignore[import-not-found]
    except ImportError:
        return object
    base: type = RecordProcessorBase
    return base


_ProcessorBase: Any = _kclpy_base()


# -- the processor ----------------------------------------------------------------------------


class DocsyncRecordProcessor(_ProcessorBase):  # type: ignore[misc]
    """One per shard (the daemon starts one process per shard lease)."""

    version = 3

    def __init__(
        self,
        core: StreamProcessor,
        sink: RowSink,
        *,
        checkpoint_interval_s: float = 60.0,
        retries: int = 5,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        effects: Effects | None = None,
    ) -> None:
        self.core = core
        self.effects = effects or Effects(None, None)
        self.sink = sink
        self.checkpoint_interval_s = checkpoint_interval_s
        self.retries = retries
        self._sleep = sleep
        self._clock = clock
        self.shard_id = ""
        self._largest: tuple[str, int | None] | None = None  # processed, not checkpointed
        self._first: tuple[str, str] | None = None  # first record since the last checkpoint
        self._anchor: datetime | None = None  # set once a record decoded: rows to name
        self._last_checkpoint = clock()
        self._dead: list[dict[str, Any]] = []
        self.checkpoints: list[tuple[str | None, int | None]] = []  # what was confirmed
        self.lost = False

    def initialize(self, initialize_input: Any) -> None:
        self.shard_id = str(initialize_input.shard_id)
        self._last_checkpoint = self._clock()
        logger.bind(op="kcl.initialize", shard=self.shard_id).info(
            "resuming after {}", initialize_input.sequence_number
        )

    def process_records(self, process_records_input: Any) -> None:
        records: list[ChangeRecord] = []
        source = f"kinesis:{self.shard_id}"
        for record in process_records_input.records:
            sub = record.sub_sequence_number
            if self._first is None:
                self._first = (str(record.sequence_number), str(sub or 0))
            try:
                change = from_kinesis(
                    record.binary_data,
                    sequence=record.sequence_number,
                    source=source,
                    sub_sequence=sub,
                )
                records.append(change)
                if self._anchor is None:
                    self._anchor = change.created_at
            except (MalformedRecordError, ValueError) as exc:
                metrics.STREAM_MALFORMED.inc()
                logger.bind(op="kcl.record", seq=record.sequence_number).warning(
                    "malformed: {}", exc
                )
                self._dead.append(
                    {
                        "reason": str(exc),
                        "source": source,
                        "sequence": record.sequence_number,
                        "data": record.data,
                        "driver": "kcl",
                    }
                )
            if self._largest is None or sequence_int(record.sequence_number) >= sequence_int(
                self._largest[0]
            ):
                self._largest = (record.sequence_number, sub)
        derived = self.core.process(records)
        self.effects.record(derived)  # raises: the daemon delivers the batch again
        self.effects.repair(self.core)
        to_prometheus(derived, self.core.cluster)
        behind = process_records_input.millis_behind_latest
        if behind is not None:
            metrics.STREAM_ITERATOR_AGE.set(int(behind) / 1000)
        to_cloudwatch(derived, age_ms=None if behind is None else float(behind))
        if self._clock() - self._last_checkpoint >= self.checkpoint_interval_s:
            self._checkpoint(process_records_input.checkpointer, at_largest=True)

    def lease_lost(self, lease_lost_input: Any) -> None:
        """Another worker owns the shard now and replays from the last checkpoint."""
        self.lost = True
        self.core.discard_pending()
        self._dead.clear()
        self._largest = None
        self._first = self._anchor = None
        logger.bind(op="kcl.lease_lost", shard=self.shard_id).warning("lease lost")

    def shard_ended(self, shard_ended_input: Any) -> None:
        """Mandatory: checkpoint at the end, or the children never start."""
        self._checkpoint(shard_ended_input.checkpointer, at_largest=False)

    def shutdown_requested(self, shutdown_requested_input: Any) -> None:
        self._checkpoint(shutdown_requested_input.checkpointer, at_largest=True)

    def _name(self) -> str | None:
        if self._first is None or self._anchor is None:
            return None
        # stored now, whatever the records' time; the first record is the identity
        return emission_name(datetime.now(UTC), "kcl", f"kinesis:{self.shard_id}", *self._first)

    def _store(self, rows: list[dict[str, Any]], dead: list[dict[str, Any]]) -> None:
        name = self._name()
        if name is None:  # nothing decoded since the last checkpoint: no rows, no name
            if dead:
                self.sink.put(DEAD_LETTER, fresh_name("kcl"), dead)
                self._dead.clear()
            return
        if dead:
            self.sink.put(DEAD_LETTER, name, dead)
        self.sink.put(ANALYTICS, name, rows)  # even empty: it supersedes a replayed attempt

    def _checkpoint(self, checkpointer: Any, *, at_largest: bool) -> bool:
        rows, dead = self.core.take_rows(), list(self._dead)
        try:
            self._store(rows, dead)
        except Exception as exc:  # no checkpoint before the rows are stored
            self.core.restore_rows(rows)
            logger.bind(op="kcl.checkpoint").error("rows not stored, no checkpoint: {}", exc)
            return False
        seq, sub = self._largest if (at_largest and self._largest) else (None, None)
        for attempt in range(1, self.retries + 1):
            try:
                checkpointer.checkpoint(seq, sub)
            except Exception as exc:
                name = str(getattr(exc, "value", type(exc).__name__))
                if name in RETRYABLE and attempt < self.retries:
                    self._sleep(min(2.0**attempt * 0.1, 5.0))
                    continue
                logger.bind(op="kcl.checkpoint", shard=self.shard_id, error=name).error(
                    "checkpoint refused: {}", exc
                )
                self.core.restore_rows(rows)  # the next emission replaces this one: keep them
                return False
            self.checkpoints.append((seq, sub))
            self._largest = None  # everything delivered so far is confirmed
            self._dead.clear()
            self._first = self._anchor = None
            self._last_checkpoint = self._clock()
            return True
        return False


def main() -> None:
    """Entry point for the MultiLangDaemon (`python3 -m engine.streams.kcl`)."""
    from engine.app import Engine
    from engine.aws import AwsClients
    from engine.logs import configure_logging
    from engine.settings import load_settings, log_deprecations
    from engine.streams.effects import build_processor
    from engine.streams.sinks import build_sink

    settings = load_settings()
    configure_logging("json", settings.log_level, stream=sys.stderr)
    log_deprecations(settings)
    config = settings.streams
    if config.metrics_port:
        metrics.serve(config.metrics_port)
    clients = AwsClients(settings)
    core = build_processor(settings, config)
    effects = (
        Effects.build(Engine.build(settings), config) if config.repair or config.history else None
    )
    processor = DocsyncRecordProcessor(
        core,
        build_sink(settings, config, clients, producer="kcl"),
        checkpoint_interval_s=config.checkpoint_interval_s,
        effects=effects,
    )
    from engine.cloudwatch import PeriodicFlush

    # stdout is the daemon's protocol channel: the alarms' EMF lines go to stderr, which the
    # daemon logs (ship its log to CloudWatch Logs, or use metrics_sink = "putmetricdata").
    flusher = PeriodicFlush(settings, clients, stream=sys.stderr).start()
    try:
        try:
            from amazon_kclpy import kcl  # type: ignore[import-not-found]
        except ImportError:
            from engine.streams.multilang import MultiLangProcess

            MultiLangProcess(processor).run()
        else:
            kcl.KCLProcess(processor).run()
    finally:
        flusher.stop()


if __name__ == "__main__":
    main()

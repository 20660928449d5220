"""The consumer's emission protocol: analytics exactly once in effect, across crashes and
takeovers, because every checkpoint is two-phase.

It first records the pending emission (the sink name of its rows and the shard positions they
cover) beside the checkpoints, under the lease's fence; then writes the rows (and dead letters)
under exactly that name; then moves the checkpoints and drops the marker in one transaction.
Whoever finds a marker (this process after a failed write, or a successor) asks the sink: the
object is there, so the checkpoints roll forward to the marker's positions (nothing counted
twice); or it is not, so the marker goes and those records are read again (nothing lost).
The loop (engine/streams/consumer.py) reads; this module decides what a checkpoint stores.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loguru import logger

from engine.store.leases import Checkpoint, Checkpoints, Lease, PendingEmission
from engine.streams.records import sequence_int
from engine.streams.shards import Shard
from engine.streams.sinks import ANALYTICS, DEAD_LETTER, RowSink, emission_name

if TYPE_CHECKING:
    from engine.streams.core import StreamProcessor


@dataclass
class ShardState:
    shard: Shard
    position: str | None = None  # last sequence number processed (in memory)
    saved: Checkpoint = field(default_factory=Checkpoint)  # what the leases table holds
    finished: bool = False
    iterator: str | None = None
    empty_reads: int = 0  # consecutive empty GetRecords: caught up
    age_s: float = 0.0
    replay_from: str | None = None  # after a restart: read again from here (AT_SEQUENCE)...
    replay_until: str | None = None  # ... feeding only the pending keys up to here

    def counted(self) -> str | None:
        """The position whose effects are stored (never behind a replay's end)."""
        if self.replay_until and (
            self.position is None or sequence_int(self.position) < sequence_int(self.replay_until)
        ):
            return self.replay_until
        return self.position


@dataclass
class Emission:
    """A begun emission whose fate is unknown (its write failed): kept until settled."""

    pending: PendingEmission
    rows: list[dict[str, Any]]
    dead: list[dict[str, Any]]


class EmissionProtocol:
    """The rows, dead letters and positions of one consumer, stored two-phase."""

    def __init__(
        self, core: StreamProcessor, sink: RowSink, states: dict[str, ShardState], summary: Any
    ) -> None:
        self.core = core
        self.sink = sink
        self.states = states  # the loop's shard states (shared: it adds and clears them)
        self.summary = summary  # counts `checkpoints` and `rows_emitted`
        self.dead: list[dict[str, Any]] = []
        self.unsettled: Emission | None = None
        self.last_checkpoint_at: float | None = None

    def forget(self) -> None:
        """The lease is lost: what is not stored is the successor's to settle or read again."""
        self.dead.clear()
        self.unsettled = None  # the marker is its successor's to settle

    def recover(self, checkpoints: Checkpoints, lease: Lease) -> None:
        """Settle the emission a predecessor began (the sink says whether its rows are stored)
        before any checkpoint is read."""
        pending = checkpoints.load_pending()
        if pending is None:
            return
        log = logger.bind(op="consume.recover", emission=pending.name)
        if self.sink.exists(ANALYTICS, pending.name):
            checkpoints.save(pending.positions, lease, settle=True)
            log.info("a begun emission was stored: checkpoints rolled forward to it")
        else:
            checkpoints.drop_pending(lease)
            log.info("a begun emission was not stored: its records will be read again")

    def _settle(self, checkpoints: Checkpoints, lease: Lease) -> bool:
        """After a failed write: roll forward if it was stored after all, else take its rows
        back for the next emission. False while the sink cannot tell."""
        emission = self.unsettled
        if emission is None:
            return True
        try:
            stored = self.sink.exists(ANALYTICS, emission.pending.name)
        except Exception as exc:
            logger.bind(op="consume.checkpoint").error("sink unreachable, will retry: {}", exc)
            return False
        if stored:
            checkpoints.save(emission.pending.positions, lease, settle=True)
            self._saved(emission.pending.positions, len(emission.rows))
        else:
            self.core.restore_rows(emission.rows)
            self.dead[:0] = emission.dead
        self.unsettled = None
        return True

    def checkpoint(self, checkpoints: Checkpoints, lease: Lease) -> None:
        if not self._settle(checkpoints, lease):
            return
        oldest = self.core.pending.oldest() if self.core.pending is not None else {}
        arn = checkpoints.stream_arn
        wanted = {
            sid: Checkpoint(
                st.counted(),
                st.finished,
                None
                if st.finished
                else st.saved.replay_at
                if st.replay_until  # mid-replay: keys after the position are not rebuilt yet
                else oldest.get(f"{arn}/{sid}"),
            )
            for sid, st in self.states.items()
        }
        updates = {sid: cp for sid, cp in wanted.items() if cp != self.states[sid].saved}
        rows, dead = self.core.take_rows(), list(self.dead)
        if rows or dead:
            identity = [
                f"{sid}:{self.states[sid].saved.sequence}:{cp.sequence}:{cp.finished}"
                for sid, cp in sorted(updates.items())
            ]
            name = emission_name(datetime.now(UTC), "consumer", checkpoints.stream_arn, *identity)
            emission = Emission(PendingEmission(name, updates), rows, dead)
            try:
                checkpoints.begin(emission.pending, lease)
            except BaseException:
                self.core.restore_rows(rows)
                raise
            self.dead.clear()
            self.unsettled = emission
            try:
                if dead:
                    self.sink.put(DEAD_LETTER, name, dead)
                self.sink.put(ANALYTICS, name, rows)  # last: its presence means all is stored
            except Exception as exc:  # settled at the next checkpoint, or by a successor
                logger.bind(op="consume.checkpoint").error(
                    "analytics not stored, will retry: {}", exc
                )
                return
            checkpoints.save(updates, lease, settle=True)
            self.unsettled = None
        elif updates:
            checkpoints.save(updates, lease)
        self._saved(updates, len(rows))
        logger.bind(
            op="consume.checkpoint",
            rows=len(rows),
            shards=len(updates),
            records=self.core.totals["records"],
            at=datetime.now(UTC).isoformat(),
        ).debug("checkpoint")

    def _saved(self, positions: Mapping[str, Checkpoint], rows: int) -> None:
        for sid, cp in positions.items():
            if sid in self.states:
                self.states[sid].saved = cp
        if positions:
            self.summary.checkpoints += 1
        self.summary.rows_emitted += rows
        self.last_checkpoint_at = time.time()

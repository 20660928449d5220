"""`docsync consume`: the local consumer of the cache table's DynamoDB stream.

One active consumer per stream (a lease in the leases table; others wait on standby and take
over once it expires). It discovers shards, reads parents before their children, resumes each
shard after its checkpoint (TRIM_HORIZON the first time), finishes closed shards, gets a new
iterator when one expires, and reports data lost to the 24-hour retention (a reconcile is then
needed). Analytics are exactly once in effect, across crashes and takeovers: every checkpoint
is two-phase (engine/streams/emission.py). The stream's calls are engine/store/stream.py's,
the lease and checkpoints engine/store/leases.py's. Scale-out beyond one process is Lambda's
or KCL's job.

Repair and history (engine/streams/effects.py): each batch's history entries are stored before
its position moves, and keys past their deadline are repaired between reads. A checkpoint
also holds `replay_at`, the oldest record of a key still pending: a successor reads again from
there, and records up to the saved position only rebuild the pending keys (their figures,
rows and history were stored already), so no stuck key is forgotten and nothing is counted
twice. The checkpoint itself keeps moving: analytics are not held back by a pending key.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from engine import metrics
from engine.app import Engine
from engine.aws import AwsClients
from engine.awsmetrics import kind_of
from engine.exceptions import LeaseLostError, StoreError
from engine.settings import Settings, StreamSettings
from engine.store.abc import Stream
from engine.store.leases import (
    Checkpoint,
    Checkpoints,
    Lease,
    consumer_lease,
    read_lease,
)
from engine.store.stream import Lost, StreamStore
from engine.streams.effects import Effects, build_processor
from engine.streams.emission import EmissionProtocol, ShardState
from engine.streams.exceptions import (
    MalformedRecordError,
    StreamNotFoundError,
    StreamsError,
)
from engine.streams.exporters import iterator_age_s, to_cloudwatch, to_prometheus
from engine.streams.records import ChangeRecord, from_stream, sequence_int
from engine.streams.shards import Shard, parse_shards, ready
from engine.streams.sinks import RowSink, build_sink

RETENTION_S = 24 * 3600


@dataclass
class ConsumeSummary:
    role: str = "standby"
    stream_arn: str | None = None
    shards: int = 0
    get_records: int = 0
    malformed: int = 0
    trimmed: int = 0
    expired_iterators: int = 0
    checkpoints: int = 0
    rows_emitted: int = 0
    takeovers: int = 0
    dry_run: bool = False
    core: dict[str, Any] = field(default_factory=dict)
    repairs: dict[str, int] = field(default_factory=dict)
    pending_keys: int = 0

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.core)
        out.update(
            role=self.role,
            stream_arn=self.stream_arn,
            shards=self.shards,
            get_records=self.get_records,
            malformed=self.malformed,
            trimmed=self.trimmed,
            expired_iterators=self.expired_iterators,
            checkpoints=self.checkpoints,
            rows_emitted=self.rows_emitted,
            takeovers=self.takeovers,
            repairs=dict(sorted(self.repairs.items())),
            pending_keys=self.pending_keys,
        )
        if self.dry_run:
            out["dry_run"] = True
        if self.trimmed:
            out["action"] = "records were lost to the stream's retention: run `docsync reconcile`"
        return out


class LocalConsumer:
    def __init__(
        self,
        settings: Settings,
        config: StreamSettings,
        clients: AwsClients,
        *,
        streams_client: Any | None = None,
        stream: Stream | None = None,
        sink: RowSink | None = None,
        owner: str | None = None,
        engine: Engine | None = None,
        on_records: Callable[[list[ChangeRecord]], None] | None = None,
    ) -> None:
        """`on_records`: told of every batch of changes read (`docsync serve` invalidates its
        L1 with it). `stream`: the stream store (default: DynamoDB Streams through `clients`;
        the tests pass the in-memory twin)."""
        self.on_records = on_records
        self.settings = settings
        self.config = config
        self.ddb = clients.dynamodb
        self.stream: Stream = stream or StreamStore(clients, streams_client)
        self.sink = sink or build_sink(settings, config, clients, producer="consumer")
        self.core = build_processor(settings, config)
        needs_engine = config.repair or config.history
        self.effects = (
            Effects.build(engine or Engine.build(settings), config)
            if needs_engine
            else Effects(None, None)
        )
        self.repairs: dict[str, int] = {}
        self.owner = owner
        self.stop = threading.Event()
        self.summary = ConsumeSummary(dry_run=settings.dry_run)
        self._states: dict[str, ShardState] = {}
        self.emission = EmissionProtocol(self.core, self.sink, self._states, self.summary)
        self._lost = threading.Event()

    # -- lifecycle ----------------------------------------------------------------------------

    def stream_arn(self) -> str:
        arn, enabled = self.stream.table_stream(self.settings.table)
        if not arn or not enabled:
            raise StreamNotFoundError(
                f"table {self.settings.table} has no stream: run `docsync init`"
            )
        return arn

    @kind_of("stream")
    def run(self, drain: bool = False) -> ConsumeSummary:
        """Until `stop` is set; with `drain`, until every shard is read to its end or tip."""
        with logger.contextualize(dry_run=self.settings.dry_run):
            return self._run(drain)

    def _run(self, drain: bool) -> ConsumeSummary:
        arn = self.stream_arn()
        self.summary.stream_arn = arn
        lease = consumer_lease(
            self.ddb, self.settings.leases_table, arn, self.config.lease_ttl_s, self.owner
        )
        log = logger.bind(op="consume", owner=lease.owner)
        try:
            while not self.stop.is_set():
                if not self._wait_for_lease(lease, arn, drain):
                    break
                self.summary.role = "active"
                self.summary.takeovers += 1
                metrics.STREAM_LEASE_HELD.set(1)
                log.info("lease acquired: consuming {}", arn)
                heartbeat = threading.Thread(
                    target=self._heartbeat, args=(lease,), name="lease-heartbeat", daemon=True
                )
                self._lost.clear()
                heartbeat.start()
                try:
                    self._consume(arn, lease, drain)
                    break
                except LeaseLostError as exc:
                    log.error("lease lost, back to standby: {}", exc)
                    self.core.discard_pending()
                    self.emission.forget()
                    self._states.clear()  # its successor moved the checkpoints on
                    self.summary.role = "standby"
                finally:
                    self._lost.set()
                    heartbeat.join(timeout=5)
                    metrics.STREAM_LEASE_HELD.set(0)
        finally:
            if self.summary.role == "active":
                lease.release(self._status())
        self.summary.core = self.core.summary()
        self.summary.repairs = dict(self.repairs)
        self.summary.pending_keys = len(self.core.pending) if self.core.pending is not None else 0
        return self.summary

    def _wait_for_lease(self, lease: Lease, arn: str, drain: bool) -> bool:
        deadline = time.monotonic() + 2 * self.config.lease_ttl_s + 1
        announced = False
        while not self.stop.is_set():
            previous = read_lease(self.ddb, self.settings.leases_table, arn) or {}
            if lease.try_acquire(self._status()):
                # Our status replaces the last holder's: keep when it last checkpointed.
                last = (previous.get("status") or {}).get("checkpointed_at")
                if isinstance(last, int | float) and self.emission.last_checkpoint_at is None:
                    self.emission.last_checkpoint_at = float(last)
                return True
            if not announced:
                logger.bind(op="consume", owner=lease.owner, holder=previous.get("owner")).info(
                    "standby: another consumer holds the lease"
                )
                announced = True
            if drain and time.monotonic() > deadline:
                holder = (read_lease(self.ddb, lease.table, arn) or {}).get("owner")
                raise StreamsError(
                    f"another consumer ({holder}) holds the stream's lease: nothing to drain here"
                )
            self.stop.wait(self.config.lease_renew_s)
        return False

    def _heartbeat(self, lease: Lease) -> None:
        with logger.contextualize(dry_run=self.settings.dry_run):
            self._renew(lease)

    def _renew(self, lease: Lease) -> None:
        last_ok = time.monotonic()
        while not self._lost.wait(self.config.lease_renew_s):
            try:
                if not lease.try_acquire(self._status()):
                    self._lost.set()
                    return
                last_ok = time.monotonic()
            except Exception as exc:  # keep trying until the lease would have expired
                logger.bind(op="consume.lease").warning("renewal failed: {}", exc)
                if time.monotonic() - last_ok > self.config.lease_ttl_s:
                    self._lost.set()
                    return

    def _status(self) -> dict[str, Any]:
        states = list(self._states.values())  # the heartbeat thread reads while we run
        ages = [s.age_s for s in states if not s.finished]
        return {
            "records": self.core.totals["records"],
            "iterator_age_s": max(ages) if ages else None,
            "shards": len(states),
            "trimmed": self.summary.trimmed,
            "malformed": self.summary.malformed,
            "checkpointed_at": self.emission.last_checkpoint_at,
            "cluster": self.core.cluster.as_dict(),
        }

    # -- the active loop ----------------------------------------------------------------------

    def _consume(self, arn: str, lease: Lease, drain: bool) -> None:
        checkpoints = Checkpoints(self.ddb, self.settings.leases_table, arn)
        self._check_retention(arn)
        self.emission.recover(checkpoints, lease)
        self._refresh(arn, checkpoints)
        last_checkpoint = last_refresh = time.monotonic()
        while not self.stop.is_set():
            if self._lost.is_set():
                raise LeaseLostError("the lease could not be renewed")
            finished = {sid for sid, st in self._states.items() if st.finished}
            shards = [st.shard for st in self._states.values()]
            now_ready = ready(shards, finished)
            progressed = False
            for shard in now_ready:
                if self.stop.is_set():
                    break
                state = self._states[shard.shard_id]
                progressed |= self._read(arn, state) > 0
                if state.finished:  # children may start: store this shard's end first
                    self.emission.checkpoint(checkpoints, lease)
                    last_checkpoint = time.monotonic()
                    self._refresh(arn, checkpoints)
                    progressed = True
            metrics.STREAM_ITERATOR_AGE.set(max([s.age_s for s in self._states.values()] or [0]))
            self._repair_due()
            if time.monotonic() - last_checkpoint >= self.config.checkpoint_interval_s:
                self.emission.checkpoint(checkpoints, lease)
                last_checkpoint = time.monotonic()
            if time.monotonic() - last_refresh >= self.config.shard_refresh_s:
                self._refresh(arn, checkpoints)
                last_refresh = time.monotonic()
            if drain and all(self._states[s.shard_id].empty_reads >= 2 for s in now_ready):
                self._repair_due()
                break
            if not progressed and not drain:
                self.stop.wait(self.config.idle_wait_s)
        self.emission.checkpoint(checkpoints, lease)

    def _repair_due(self) -> None:
        for outcome, n in self.effects.repair(self.core).items():
            self.repairs[outcome] = self.repairs.get(outcome, 0) + n

    def _check_retention(self, arn: str) -> None:
        """A consumer that stopped checkpointing more than 24 h ago has lost records."""
        last = self.emission.last_checkpoint_at
        if last is not None and time.time() - last > RETENTION_S:
            self._trimmed(
                arn, "*", f"the last checkpoint is {(time.time() - last) / 3600:.0f} h old"
            )

    def _refresh(self, arn: str, checkpoints: Checkpoints) -> None:
        shards = self._describe(arn)
        new = [s for s in shards if s.shard_id not in self._states]
        if not new:
            return
        known = {s.shard_id for s in shards}
        parents = {s.parent_id for s in new if s.parent_id and s.parent_id not in known}
        saved = checkpoints.load([s.shard_id for s in new] + sorted(parents))
        for parent in sorted(parents):
            cp = saved.get(parent)
            if cp is not None and not cp.finished:
                self._trimmed(arn, parent, "a shard we had not finished is gone from the stream")
        for shard in new:
            cp = saved.get(shard.shard_id, Checkpoint())
            replay = cp.replay_at is not None and not cp.finished and self.core.pending is not None
            self._states[shard.shard_id] = ShardState(
                shard,
                position=None if replay else cp.sequence,
                saved=cp,
                finished=cp.finished,
                replay_from=cp.replay_at if replay else None,
                replay_until=cp.sequence if replay else None,
            )
        self.summary.shards = len(self._states)

    def _describe(self, arn: str) -> list[Shard]:
        return parse_shards(self.stream.shards(arn))

    def _iterator(self, arn: str, state: ShardState) -> str | None:
        shard_id = state.shard.shard_id
        if state.position:
            got = self.stream.iterator(arn, shard_id, "AFTER_SEQUENCE_NUMBER", state.position)
        elif state.replay_from:
            got = self.stream.iterator(arn, shard_id, "AT_SEQUENCE_NUMBER", state.replay_from)
        else:
            got = self.stream.iterator(arn, shard_id, "TRIM_HORIZON")
        if got is Lost.TRIMMED and (state.position or state.replay_from):
            where = state.position or state.replay_from
            self._trimmed(arn, shard_id, f"sequence {where} was trimmed")
            state.position = state.replay_from = state.replay_until = None
            return self._iterator(arn, state)
        if got is Lost.SHARD_GONE:
            self._trimmed(arn, shard_id, "the shard is gone")
            state.finished = True
            return None
        if isinstance(got, Lost):  # trimmed at TRIM_HORIZON: nothing sensible to retry
            raise StoreError(f"get shard iterator: {got.value}")
        return got

    @kind_of("stream", "docsync.stream.batch", ("state",))
    def _read(self, arn: str, state: ShardState) -> int:
        if state.iterator is None:
            state.iterator = self._iterator(arn, state)
            if state.iterator is None:
                return 0
        try:
            response = self.stream.records(state.iterator, self.config.get_records_limit)
        except StoreError:
            state.iterator = None
            raise
        if isinstance(response, Lost):  # EXPIRED or TRIMMED
            state.iterator = None
            if response is Lost.EXPIRED:
                self.summary.expired_iterators += 1
            else:
                self._trimmed(arn, state.shard.shard_id, "records were trimmed while reading")
                state.position = None
            return 0
        self.summary.get_records += 1
        raw_records = response.get("Records", [])
        records = self._decode(arn, state.shard.shard_id, raw_records)
        if self.on_records is not None and records:
            self.on_records(records)
        if state.replay_until:
            until = sequence_int(state.replay_until)
            self.core.replay(r for r in records if sequence_int(r.sequence) <= until)
            records = [r for r in records if sequence_int(r.sequence) > until]
        derived = self.core.process(records)
        self.effects.record(derived, self.settings.dry_run)  # before the position moves
        to_prometheus(derived, self.core.cluster)
        to_cloudwatch(derived)
        for raw in reversed(raw_records):
            seq = raw.get("dynamodb", {}).get("SequenceNumber")
            if isinstance(seq, str):
                state.position = seq
                state.replay_from = None
                if state.replay_until and sequence_int(seq) >= sequence_int(state.replay_until):
                    state.replay_until = None  # caught up with what was counted
                break
        state.empty_reads = 0 if raw_records else state.empty_reads + 1
        state.age_s = iterator_age_s(derived) or 0.0
        if state.age_s > RETENTION_S * 0.8:
            logger.bind(op="consume", shard=state.shard.shard_id, age_s=state.age_s).warning(
                "falling behind: records near the stream's 24 h retention"
            )
        state.iterator = response.get("NextShardIterator")
        if state.iterator is None:
            state.finished = True
            logger.bind(op="consume", shard=state.shard.shard_id).info("shard finished")
        return len(raw_records)

    def _decode(self, arn: str, shard_id: str, raw: list[dict[str, Any]]) -> list[ChangeRecord]:
        records = []
        source = f"{arn}/{shard_id}"
        for item in raw:
            try:
                records.append(from_stream(item, source))
            except MalformedRecordError as exc:
                self.summary.malformed += 1
                metrics.STREAM_MALFORMED.inc()
                logger.bind(op="consume", shard=shard_id).warning("malformed record: {}", exc)
                self.emission.dead.append(
                    {"reason": str(exc), "source": source, "record": item, "driver": "consumer"}
                )
        return records

    def _trimmed(self, arn: str, shard_id: str, why: str) -> None:
        self.summary.trimmed += 1
        metrics.STREAM_TRIMMED.inc()
        logger.bind(op="consume", stream=arn, shard=shard_id).error(
            "records lost to the stream's 24 h retention ({}): run `docsync reconcile`", why
        )

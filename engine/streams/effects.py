"""What the stream drivers do beyond figures, the same in each (local consumer, serve's
consumer, Lambda, KCL): store the history entries a batch produced, and repair the pending
keys whose deadline passed. History is stored before the driver checkpoints, so a crash
replays it (an idempotent overwrite); a failed store raises, and the batch is read again.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine import metrics
from engine.app import Engine
from engine.settings import Settings, StreamSettings
from engine.store.abc import History
from engine.store.history import HistoryStore
from engine.streams.core import Derived, StreamProcessor
from engine.streams.repair import StreamRepairer


def build_processor(settings: Settings, config: StreamSettings) -> StreamProcessor:
    """The shared core with repair and history switched as configured."""
    return StreamProcessor(
        table=settings.table,
        window_s=config.window_s,
        dedupe_capacity=config.dedupe_capacity,
        grace_s=settings.inflight_grace_s if config.repair else None,
        recheck_delay_s=config.recheck_delay_s,
        pending_capacity=config.pending_capacity,
        history_days=settings.history_days if config.history else None,
    )


@dataclass
class Effects:
    history: History | None
    repairer: StreamRepairer | None

    @classmethod
    def build(cls, engine: Engine, config: StreamSettings) -> Effects:
        s = engine.settings
        history = HistoryStore(engine.clients.dynamodb, s.history_table) if config.history else None
        repairer = (
            StreamRepairer(s, engine.cache, engine.objects, engine.sync) if config.repair else None
        )
        return cls(history, repairer)

    def record(self, derived: Derived, dry_run: bool = False) -> int:
        """Store the history entries of a batch (before its checkpoint)."""
        if self.history is None or not derived.history or dry_run:
            return 0
        stored = self.history.put_many(derived.history)
        metrics.HISTORY_ENTRIES.inc(stored)
        return stored

    def repair(self, core: StreamProcessor, now_ms: int | None = None) -> dict[str, int]:
        """Repair the keys past their deadline."""
        if self.repairer is None or core.pending is None or not len(core.pending):
            return {}
        return self.repairer.run_due(core.pending, now_ms)

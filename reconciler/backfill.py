"""`docsync backfill`: warm the cache from S3. It is the reconciler's repair of `missing`,
narrowed by filters — one code path, the same sorted merge and the same convergence rules."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from engine.app import Engine
from reconciler.run import Filters, Reconciler
from reconciler.shards import Shard


@dataclass(frozen=True)
class BackfillCounts:
    listed: int  # keys compared (S3 and cache sides merged)
    filled: int  # missing entries written (in a dry run: that would be written)
    already_current: int  # cached and equal to S3
    stale: int  # cached but older than S3: left to `reconcile --repair`
    filtered: int  # outside --since / --customer
    out_of_window: int
    invalid: int
    failed: int
    dry_run: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def backfill(
    engine: Engine,
    types: Iterable[str] | None = None,
    since: datetime | None = None,
    customer: str | None = None,
    on_shard_done: Callable[[Shard], None] | None = None,
) -> BackfillCounts:
    filters = Filters(
        classes=frozenset({"missing"}), since=since, customer=customer, source="backfill"
    )
    result = Reconciler(engine).run("repair", types, filters, on_shard_done, emit="off")
    return BackfillCounts(
        listed=result.compared,
        filled=result.repaired["missing"] + result.would_repair["missing"],
        already_current=result.counts["in_sync"],
        stale=result.counts["stale"],
        filtered=result.skipped["filtered"],
        out_of_window=result.skipped["out_of_window"],
        invalid=result.counts["invalid"],
        failed=result.counts["missing"]
        - result.repaired["missing"]
        - result.would_repair["missing"],
        dry_run=result.dry_run,
    )

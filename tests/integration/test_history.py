"""History from moto's real stream: a scripted life written through the pipeline, its records
delivered again, replayed and reordered across batches, stored by fresh processors each time:
the history table ends exactly the same, with exactly the expected entries."""

from __future__ import annotations

import random
from typing import Any

from engine.app import Engine
from engine.settings import Settings
from engine.store.history import HistoryStore
from engine.streams.core import StreamProcessor
from engine.streams.records import from_stream
from tests.integration.test_reconcile import _stream_records
from tests.integration.test_streams_consumer import doc

SEEDS = (3, 17, 2026)


# The scripted life's entries, oldest first: (version, change, status from, status to, actor).
LIFE = [
    (1, "create", None, "draft", "alice"),
    (2, "update", "draft", "approved", "bob"),
    (3, "update", "approved", "approved", None),
    (4, "delete", "approved", None, "carol"),
    (5, "create", None, "draft", "alice"),
]


def life(newest_first: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (e["version"], e["change"], e.get("status_from"), e.get("status_to"), e.get("actor"))
        for e in reversed(newest_first)
    ]


def live_a_life(engine: Engine) -> None:
    engine.pipeline.put(doc("CHG-L", status="draft"), actor="alice")
    engine.pipeline.put(doc("CHG-L", status="approved", n=1), actor="bob")
    engine.pipeline.put(doc("CHG-L", status="approved", customers=("acme", "initech"), n=2))
    engine.pipeline.delete("change", "CHG-L", actor="carol")
    engine.pipeline.put(doc("CHG-L", status="draft", n=3), actor="alice")


def store_batches(engine: Engine, records: list[dict[str, Any]], cuts: list[int]) -> None:
    store = HistoryStore(engine.clients.dynamodb, engine.settings.history_table)
    for lo, hi in zip([0, *cuts], [*cuts, len(records)], strict=True):
        core = StreamProcessor(table=engine.settings.table, history_days=400)  # a fresh worker
        store.put_many(core.process(from_stream(r, "s") for r in records[lo:hi]).history)


def test_a_scripted_life_under_duplicate_replayed_and_reordered_batches(
    settings: Settings, engine: Engine
) -> None:
    live_a_life(engine)
    records = _stream_records(engine)
    store = HistoryStore(engine.clients.dynamodb, settings.history_table)
    store_batches(engine, records, [])
    straight = store.list("change", "CHG-L")
    assert life(straight) == LIFE
    assert straight[2]["customers"] == ["acme", "initech"]
    assert "etag" not in straight[1] and straight[0]["etag"] == doc("CHG-L", n=3).etag
    for seed in SEEDS:
        rng = random.Random(seed)
        deliveries = records + rng.sample(records, len(records) // 2)  # redelivered
        deliveries += records[rng.randrange(len(records)) :]  # replayed from a checkpoint
        rng.shuffle(deliveries)  # batches in any order
        cuts = sorted(rng.sample(range(1, len(deliveries)), 5))
        store_batches(engine, deliveries, cuts)
        assert store.list("change", "CHG-L") == straight, f"seed {seed}"

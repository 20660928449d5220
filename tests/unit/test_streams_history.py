"""engine/streams/history.py: one entry per committed change, derived from one record's
images, so that duplicate, replayed and reordered batches store the very same entries."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.store.item import CacheItem
from engine.streams.core import StreamProcessor
from engine.streams.history import change_of, history_entry, public
from engine.streams.records import ChangeRecord, from_stream
from tests.unit.test_streams_core import T0, live, ms, raw

PK = "change#CHG-1"
DAYS = 400


def committed(
    version: int, *, status: str, etag: str, actor: str | None, at_s: int, source: str = "write"
) -> dict[str, Any]:
    image = live(PK, version, status=status, source=source, at=T0 + timedelta(seconds=at_s))
    image["etag"] = etag
    if actor:
        image["actor"] = actor
    return image


def pending(base: dict[str, Any] | None, tx: str, at_s: int, op: str = "put") -> dict[str, Any]:
    at = ms(T0 + timedelta(seconds=at_s))
    return {**(base or {"pk": PK}), "p_tx": tx, "p_etag": tx, "p_op": op, "p_at": at}


def scripted_life() -> list[dict[str, Any]]:
    """Create (draft), approve, edit (by the listener: written straight to S3), delete,
    recreate; every step as the pipeline writes it: intent, then commit."""
    v1 = committed(1, status="draft", etag="e1", actor="alice", at_s=0)
    v2 = committed(2, status="approved", etag="e2", actor="apikey:1a2b", at_s=10)
    v3 = committed(3, status="approved", etag="e3", actor=None, at_s=20, source="event")
    v3_stale_actor = v3 | {"actor": "apikey:1a2b"}  # a listener update keeps the attribute
    v4 = {
        "pk": PK,
        "state": "deleted",
        "version": 4,
        "sync_source": "write",
        "s3_last_modified": ms(T0) + 30_000,
        "synced_at": ms(T0) + 30_100,
        "actor": "alice",
    }
    v5 = committed(5, status="draft", etag="e5", actor="bob", at_s=40)
    i1, i2 = pending(None, "t1", 0), pending(v1, "t2", 10)
    i4, i5 = pending(v3, "t4", 30, "delete"), pending(v4, "t5", 40)
    return [
        raw("INSERT", None, i1),
        raw("INSERT", None, i1),  # moto: an UpdateItem that creates an item emits two INSERTs
        raw("MODIFY", i1, v1),
        raw("MODIFY", v1, i2),
        raw("MODIFY", i2, v2),
        raw("MODIFY", v2, v2),  # an unchanged re-put still emits MODIFY (moto): no entry
        raw("MODIFY", v2, v3_stale_actor),
        raw("MODIFY", v3_stale_actor, i4),
        raw("MODIFY", i4, v4),
        raw("MODIFY", v4, i5),
        raw("MODIFY", i5, v5),
    ]


EXPECTED = [
    {"version": 1, "change": "create", "status_to": "draft", "etag": "e1", "actor": "alice"},
    {
        "version": 2,
        "change": "update",
        "status_from": "draft",
        "status_to": "approved",
        "etag": "e2",
        "actor": "apikey:1a2b",
    },
    {
        "version": 3,
        "change": "update",
        "status_from": "approved",
        "status_to": "approved",
        "etag": "e3",
    },
    {"version": 4, "change": "delete", "status_from": "approved", "actor": "alice"},
    {"version": 5, "change": "create", "status_to": "draft", "etag": "e5", "actor": "bob"},
]
SHOWN = ("version", "change", "status_from", "status_to", "etag", "actor")


def store(records: list[ChangeRecord], table: dict[tuple[str, int], dict[str, Any]]) -> None:
    """What the history table holds after these records: a put per entry, last one wins."""
    core = StreamProcessor(table="docsync-cache", history_days=DAYS)
    for entry in core.process(records).history:
        table[(entry["pk"], entry["version"])] = entry


def newest_first(table: dict[tuple[str, int], dict[str, Any]]) -> list[dict[str, Any]]:
    return [table[k] for k in sorted(table, key=lambda k: -k[1])]


def test_a_scripted_life_gives_exactly_these_entries() -> None:
    table: dict[tuple[str, int], dict[str, Any]] = {}
    store([from_stream(r) for r in scripted_life()], table)
    got = [{k: e[k] for k in SHOWN if k in e} for e in reversed(newest_first(table))]
    assert got == EXPECTED
    first = table[(PK, 1)]
    assert first["type"] == "change" and first["id"] == "CHG-1"
    assert first["customers"] == ["acme"] and first["sync_source"] == "write"
    assert first["at"].endswith("Z") and first["s3_last_modified"].endswith("Z")
    assert first["expires_at"] == ms(T0) // 1000 + DAYS * 86400
    assert "pk" not in public(first) and "expires_at" not in public(first)
    assert table[(PK, 3)]["sync_source"] == "event" and "actor" not in table[(PK, 3)]


@settings(max_examples=30, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1))
def test_duplicate_replayed_and_reordered_batches_store_the_same_entries(seed: int) -> None:
    rng = random.Random(seed)
    life = scripted_life()
    straight: dict[tuple[str, int], dict[str, Any]] = {}
    store([from_stream(r) for r in life], straight)
    table: dict[tuple[str, int], dict[str, Any]] = {}
    deliveries = list(life)
    deliveries += rng.sample(life, rng.randint(0, len(life)))  # redelivered records
    start = rng.randrange(len(life))
    deliveries += life[start:]  # a replay from a checkpoint
    rng.shuffle(deliveries)  # batches processed in any order, by several workers
    cut = sorted(rng.sample(range(1, len(deliveries)), min(4, len(deliveries) - 1)))
    for lo, hi in zip([0, *cut], [*cut, len(deliveries)], strict=True):
        store([from_stream(r) for r in deliveries[lo:hi]], table)  # each batch a fresh worker
    assert table == straight


def change(old: dict[str, Any] | None, new: dict[str, Any]) -> str | None:
    return change_of(CacheItem.maybe(old), CacheItem.from_item(new))


def test_what_is_not_a_change() -> None:
    v1 = live(PK, 1)
    assert change(None, pending(None, "t", 0)) is None  # an intent on a new entry
    assert change(v1, pending(v1, "t", 0)) is None  # an intent
    assert change(pending(v1, "t", 0), v1) is None  # a rollback
    assert change(None, live(PK, 1, source="backfill")) is None  # a fill after a miss
    assert change(v1, live(PK, 2) | {"etag": v1["etag"]}) is None  # a same-content re-sync
    deleted = {"pk": PK, "state": "deleted", "version": 2}
    assert change(deleted, deleted | {"version": 3}) is None  # a tombstone refresh
    ttl_removal = from_stream(raw("REMOVE", v1, None, ttl=True))
    assert history_entry(ttl_removal, DAYS) is None

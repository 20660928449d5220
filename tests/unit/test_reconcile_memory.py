"""The reconciler end to end on the in-memory twins: random S3 and cache states (hypothesis,
a fixed seed) planted through the pipeline and straight to S3, a report that classifies each
key as the plan says and changes nothing, a repair through `CacheSync.converge` that makes
the cache equal S3, and a second run that finds no drift. The moto twin of this file, with
racing writers and listeners, is tests/integration/test_reconcile.py; the pure merge is
tests/unit/test_reconcile_diff.py."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from reconciler.run import Reconciler
from tests.memory_stores import MemoryEngine
from tests.unit._hyp import FAST
from tests.unit.test_pipeline_memory import doc

# What to plant for one document, and the class a report gives it (None: not compared at all).
PLANS: dict[str, str | None] = {
    "in_sync": "in_sync",  # written through the pipeline
    "missing": "missing",  # put straight to S3: no event applied
    "stale": "stale",  # cached, then overwritten straight in S3
    "orphaned": "orphaned",  # cached, then deleted straight from S3
    "tombstone": None,  # deleted through the pipeline: a tombstone, nothing in S3
    "recreated": "missing",  # a tombstone, then put straight to S3 again
    "invalid": "invalid",  # not a document: reported, never cached, never deleted
    "index": "stale",  # cached, one of its customer-index entries lost
}
IDS = st.text("abcXYZ019._-", min_size=1, max_size=4)
STATES = st.dictionaries(IDS, st.sampled_from(sorted(PLANS)), max_size=10)


def plant(engine: MemoryEngine, plans: dict[str, str]) -> None:
    for doc_id, plan in plans.items():
        key = f"changes/{doc_id}.json"
        if plan == "missing":
            engine.objects.put(key, doc(doc_id).body)
            continue
        if plan == "invalid":
            engine.objects.put(key, b'{"id": "' + doc_id.encode() + b'", "title": 7}')
            continue
        engine.pipeline.put(doc(doc_id))
        if plan == "stale":
            engine.objects.put(key, doc(doc_id, title="changed in S3").body)
        elif plan == "orphaned":
            engine.objects.delete(key)
        elif plan in ("tombstone", "recreated"):
            engine.pipeline.delete("change", doc_id)
            if plan == "recreated":
                engine.objects.put(key, doc(doc_id, title="back").body)
        elif plan == "index":
            lost = {"pk": {"S": f"_docsync#cix#change#{doc_id}#acme"}}
            engine.ddb.delete_item(TableName=engine.settings.table, Key=lost)


def cache_equals_s3(engine: MemoryEngine) -> None:
    """Every valid document in S3 is cached live with its ETag; every live entry is in S3."""
    live = {
        str(item["s3_key"]): str(item["etag"])
        for item in engine.cache.scan_all()
        if item.get("state") == "live"
    }
    held = {}
    for info in engine.objects.list("changes/"):
        if b'"title": 7' not in engine.objects.get(info.key).body:
            held[info.key] = info.etag
    assert live == held


@settings(FAST, max_examples=50)  # three reconcile runs each
@given(STATES)
@example({"a": "in_sync", "b": "missing", "c": "stale", "d": "orphaned", "e": "index"})
@example({"t": "tombstone", "r": "recreated", "i": "invalid"})
def test_report_then_repair_then_no_drift(plans: dict[str, str]) -> None:
    engine = MemoryEngine.build(reconcile={"workers": 1})  # threads cost more than memory's calls
    plant(engine, plans)
    before = engine.snapshot()
    report = Reconciler(engine).run("report")  # type: ignore[arg-type]
    expected = Counter(c for c in (PLANS[p] for p in plans.values()) if c is not None)
    assert +report.counts == expected
    classes = {item["key"]: item["class"] for item in report.items}
    assert classes == {
        f"changes/{i}.json": PLANS[p] for i, p in plans.items() if PLANS[p] not in (None, "in_sync")
    }
    assert engine.snapshot() == before  # a report writes nothing

    repair = Reconciler(engine).run("repair")  # type: ignore[arg-type]
    assert +repair.counts == expected
    assert +repair.repaired == Counter(
        {c: n for c, n in expected.items() if c in ("missing", "stale", "orphaned")}
    )
    cache_equals_s3(engine)
    for doc_id, plan in plans.items():
        if plan == "invalid":  # never deleted, never cached
            assert engine.objects.head(f"changes/{doc_id}.json") is not None
            assert engine.cache.get_item("change", doc_id) is None

    again = Reconciler(engine).run("repair")  # type: ignore[arg-type]
    assert again.remaining() == 0 and sum(again.repaired.values()) == 0
    assert +again.counts == Counter(
        {"in_sync": sum(1 for c in expected.elements() if c not in ("invalid", "orphaned"))}
        | ({"invalid": expected["invalid"]} if expected["invalid"] else {})
    )


def test_a_repair_goes_through_converge_with_its_source() -> None:
    engine = MemoryEngine.build()
    plant(engine, {"m": "missing", "s": "stale"})
    Reconciler(engine).run("repair")  # type: ignore[arg-type]
    sources: dict[str, Any] = {
        i: (engine.cache.get_item("change", i) or {}).get("sync_source") for i in "ms"
    }
    assert sources == {"m": "repair", "s": "repair"}

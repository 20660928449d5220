"""`CacheSync.converge` outcomes on the in-memory twins (the moto twin of this file, with
the AWS calls each outcome costs, is tests/integration/test_sync_converge.py). Memory can
also date an S3 object back, which moto cannot, so the window is tested end to end here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.sync import Hint
from tests.integration.test_listener_convergence import body
from tests.memory_stores import MemoryEngine

KEY = "changes/CHG-cv.json"


def state(engine: MemoryEngine) -> str | None:
    item = engine.cache.get_item("change", "CHG-cv")
    return None if item is None else str(item["state"])


def test_present_then_unchanged_then_absent_then_tombstoned_once() -> None:
    engine = MemoryEngine.build()
    info = engine.objects.put(KEY, body("CHG-cv", 1))
    done = engine.sync.converge("change", "CHG-cv", "event")
    assert (done.outcome, done.written, done.look.seen) == ("applied", "applied", "document")
    item = engine.cache.get_item("change", "CHG-cv")
    assert item is not None and item["etag"] == info.etag and item["sync_source"] == "event"
    again = engine.sync.converge("change", "CHG-cv", "event")
    assert (again.outcome, again.written, again.look.seen) == ("unchanged", None, "same")
    engine.objects.delete(KEY)
    removed_at = datetime.now(UTC).replace(microsecond=0)
    gone = engine.sync.converge("change", "CHG-cv", "event", hint=Hint(removed=True, at=removed_at))
    assert (gone.outcome, gone.look.seen) == ("applied", "absent") and state(engine) == "deleted"
    assert engine.sync.converge("change", "CHG-cv", "event").written is None


def test_invalid_and_mismatched_ids_are_never_cached() -> None:
    engine = MemoryEngine.build()
    engine.s3_clock.at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    engine.objects.put(KEY, body("CHG-cv", 1))
    engine.sync.converge("change", "CHG-cv", "event")
    engine.s3_clock.at = None  # a later S3 position (positions are whole seconds)
    engine.objects.put(KEY, b'{"id": "CHG-cv", "title": 7}')
    done = engine.sync.converge("change", "CHG-cv", "event")
    assert (done.outcome, done.written) == ("invalid", "applied") and state(engine) == "deleted"
    other = MemoryEngine.build()
    other.objects.put(KEY, body("CHG-other", 1))
    mismatch = other.sync.converge("change", "CHG-cv", "event")
    assert (mismatch.outcome, mismatch.written) == ("invalid", None) and state(other) is None


def test_an_object_older_than_the_window_is_left_alone_unless_told() -> None:
    engine = MemoryEngine.build()
    old = datetime.now(UTC).replace(microsecond=0) - timedelta(
        days=engine.settings.cache_ttl_days + 10
    )
    engine.s3_clock.at = old  # S3 dated back: what moto cannot do
    engine.objects.put(KEY, body("CHG-cv", 1))
    done = engine.sync.converge("change", "CHG-cv", "backfill")
    assert (done.outcome, done.written) == ("out_of_window", None) and state(engine) is None
    kept = engine.sync.converge("change", "CHG-cv", "repair", check_window=False)
    assert kept.outcome == "applied" and state(engine) == "live"

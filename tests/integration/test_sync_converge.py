"""`CacheSync.converge`, the one "read S3 now, parse, check the id, make the entry equal, or
tombstone" of the listener, the reconciler and the stream repair: each outcome, with the AWS
calls it costs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.app import Engine
from engine.aws import CallCounter
from engine.documents import Document, parse_document
from engine.store.objects import ObjectInfo, StoredObject
from engine.sync import Hint, Look
from tests.integration.test_listener_convergence import body

KEY = "changes/CHG-cv.json"


def calls(counter: CallCounter) -> dict[str, int]:
    counts = dict(counter.counts)
    counter.reset()
    return counts


def state(engine: Engine) -> str | None:
    item = engine.cache.get_item("change", "CHG-cv")
    return None if item is None else str(item["state"])


def cache_older_version(engine: Engine) -> None:
    """A live entry a minute older than anything S3 will hold next (S3 positions have second
    precision: two writes in one second are the same position)."""
    data = body("CHG-cv", 1)
    info = ObjectInfo(KEY, "0" * 32, len(data), datetime.now(UTC) - timedelta(minutes=1))
    look = Look(key=KEY, seen="document", stored=StoredObject(info, data), doc=parse(data))
    assert engine.sync.converge("change", "CHG-cv", "event", look=look).outcome == "applied"


def parse(data: bytes) -> Document:
    return parse_document(data, "change")


def test_present_is_cached_then_unchanged_at_two_calls(
    engine: Engine, counter: CallCounter
) -> None:
    info = engine.objects.put(KEY, body("CHG-cv", 1))
    counter.reset()
    done = engine.sync.converge("change", "CHG-cv", "event")
    assert (done.outcome, done.written, done.look.seen) == ("applied", "applied", "document")
    assert calls(counter) == {
        "dynamodb.GetItem": 1,
        "s3.GetObject": 1,
        "dynamodb.TransactWriteItems": 1,  # the entry and its customer's index entry
    }
    item = engine.cache.get_item("change", "CHG-cv")
    assert item is not None and item["etag"] == info.etag and item["sync_source"] == "event"
    counter.reset()
    again = engine.sync.converge("change", "CHG-cv", "event")
    assert (again.outcome, again.written, again.look.seen) == ("unchanged", None, "same")
    assert calls(counter) == {"dynamodb.GetItem": 1, "s3.GetObject": 1}  # a 304, no write


def test_absent_is_tombstoned_once(engine: Engine, counter: CallCounter) -> None:
    engine.objects.put(KEY, body("CHG-cv", 1))
    engine.sync.converge("change", "CHG-cv", "event")
    engine.objects.delete(KEY)
    removed_at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    hint = Hint(sequencer="00AB", removed=True, at=removed_at)
    done = engine.sync.converge("change", "CHG-cv", "event", hint=hint)
    assert (done.outcome, done.look.seen) == ("applied", "absent")
    item = engine.cache.get_item("change", "CHG-cv")
    assert item is not None and item["state"] == "deleted"
    assert item["sequencer"] == "00AB"
    assert int(item["s3_last_modified"]) >= int(removed_at.timestamp() * 1000)
    counter.reset()
    again = engine.sync.converge("change", "CHG-cv", "event")
    assert (again.outcome, again.written) == ("unchanged", None)
    assert calls(counter) == {"dynamodb.GetItem": 1, "s3.GetObject": 1}


def test_absent_and_never_cached_leaves_a_tombstone(engine: Engine) -> None:
    done = engine.sync.converge("change", "CHG-cv", "repair")
    assert (done.outcome, done.look.seen) == ("applied", "absent")
    assert state(engine) == "deleted"  # a late create event cannot resurrect it


def test_invalid_tombstones_a_live_entry_and_is_never_cached(
    engine: Engine, counter: CallCounter
) -> None:
    cache_older_version(engine)
    engine.objects.put(KEY, b'{"id": "CHG-cv", "title": 7}')
    counter.reset()
    done = engine.sync.converge("change", "CHG-cv", "event")
    assert (done.outcome, done.written, done.look.seen) == ("invalid", "applied", "invalid")
    assert done.look.problem is not None
    assert state(engine) == "deleted"  # readers are never served what S3 no longer holds
    assert engine.objects.head(KEY) is not None  # never deleted from S3
    again = engine.sync.converge("change", "CHG-cv", "event")
    assert (again.outcome, again.written) == ("invalid", None)  # nothing live: no write


def test_an_id_that_does_not_match_the_key_is_invalid(engine: Engine) -> None:
    engine.objects.put(KEY, body("CHG-other", 1))
    done = engine.sync.converge("change", "CHG-cv", "event")
    assert (done.outcome, done.written) == ("invalid", None)
    assert done.look.problem is not None and "does not match the key" in str(done.look.problem)
    assert state(engine) is None


def test_a_sequencer_is_kept_only_for_the_etag_its_event_names(engine: Engine) -> None:
    info = engine.objects.put(KEY, body("CHG-cv", 1))
    other = Hint(etag="not-" + info.etag, sequencer="00FF")
    engine.sync.converge("change", "CHG-cv", "event", hint=other)
    item = engine.cache.get_item("change", "CHG-cv")
    assert item is not None and "sequencer" not in item
    engine.objects.put(KEY, body("CHG-cv", 2))
    newer = engine.objects.head(KEY)
    assert newer is not None
    engine.sync.converge("change", "CHG-cv", "event", hint=Hint(etag=newer.etag, sequencer="0100"))
    item = engine.cache.get_item("change", "CHG-cv")
    assert item is not None and item["sequencer"] == "0100" and item["etag"] == newer.etag


def test_out_of_window_is_left_alone_unless_the_caller_decided_the_window(
    engine: Engine, counter: CallCounter
) -> None:
    old = datetime.now(UTC) - timedelta(days=engine.settings.cache_ttl_days + 10)
    data = body("CHG-cv", 1)
    stored = StoredObject(ObjectInfo(KEY, "e" * 32, len(data), old), data)
    # what a read made earlier saw (moto cannot date an object back)
    earlier = Look(key=KEY, seen="document", stored=stored, doc=parse(data))
    counter.reset()
    done = engine.sync.converge("change", "CHG-cv", "backfill", current=None, look=earlier)
    assert (done.outcome, done.written) == ("out_of_window", None)
    assert calls(counter) == {}  # the item and S3 were given: no call at all
    kept = engine.sync.converge(
        "change", "CHG-cv", "repair", current=None, look=earlier, check_window=False
    )
    assert kept.outcome == "applied"
    assert state(engine) == "live"

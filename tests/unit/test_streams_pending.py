"""engine/streams/pending.py: which keys the stream flags for a repair, and when, from the
images alone; a replay (restart, redelivery) rebuilds the same set."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.streams.pending import PendingKeys
from engine.streams.records import ChangeRecord, from_stream
from tests.unit.test_streams_core import ARN, T0, intent, live, ms, raw, tombstone

GRACE_S = 60.0


def rec(*args: object, **kwargs: object) -> ChangeRecord:
    return from_stream(raw(*args, **kwargs))  # type: ignore[arg-type]


def with_tx(image: dict[str, object], tx: str, etag: str = "e") -> dict[str, object]:
    return {**image, "p_tx": tx, "p_etag": etag}


def test_an_intent_is_pending_until_its_commit() -> None:
    keys = PendingKeys(GRACE_S)
    at = ms(T0)
    keys.observe(rec("INSERT", None, intent(None, "change#c1", at_ms=at)))
    held = keys.get("change#c1")
    assert held is not None and held.reason == "stuck_intent" and held.tx == "tx"
    assert held.due_ms == at + 60_000
    assert keys.due(at + 59_999) == [] and keys.due(at + 60_000) == [held]
    keys.observe(rec("MODIFY", intent(None, "change#c1", at_ms=at), live("change#c1", 1)))
    assert len(keys) == 0


def test_a_rollback_a_delete_and_a_ttl_expiry_resolve_the_key() -> None:
    for removal in (
        rec("REMOVE", intent(None, "change#c1", at_ms=ms(T0)), None),  # rollback of a new entry
        rec("REMOVE", tombstone("change#c1", 3), None, ttl=True),  # TTL: S3 never touched
    ):
        keys = PendingKeys(GRACE_S)
        keys.observe(rec("INSERT", None, intent(None, "change#c1", at_ms=ms(T0))))
        keys.observe(removal)
        assert len(keys) == 0
    keys = PendingKeys(GRACE_S)
    base = live("change#c1", 1)
    keys.observe(rec("MODIFY", base, intent(base, "change#c1", at_ms=ms(T0))))
    keys.observe(rec("MODIFY", intent(base, "change#c1", at_ms=ms(T0)), base))  # restored
    assert len(keys) == 0


def test_a_takeover_by_a_new_intent_moves_the_deadline() -> None:
    keys = PendingKeys(GRACE_S)
    first = with_tx(intent(None, "change#c1", at_ms=ms(T0)), "tx1")
    second = with_tx(intent(None, "change#c1", at_ms=ms(T0) + 90_000), "tx2")
    keys.observe(rec("INSERT", None, first))
    keys.observe(rec("MODIFY", first, second))
    held = keys.get("change#c1")
    assert held is not None and held.tx == "tx2" and held.due_ms == ms(T0) + 150_000


def test_a_listener_write_over_another_writes_intent_is_checked_once_more() -> None:
    base = live("change#c1", 1)
    pending_write = with_tx(intent(base, "change#c1", at_ms=ms(T0)), "tx", etag="other")
    by_event = live("change#c1", 2, source="event") | {"etag": "from-s3"}
    keys = PendingKeys(GRACE_S, recheck_delay_s=5)
    keys.observe(rec("MODIFY", base, pending_write))
    keys.observe(rec("MODIFY", pending_write, by_event))
    held = keys.get("change#c1")
    assert held is not None and held.reason == "recheck"
    assert held.due_ms == by_event["synced_at"] + 5_000
    # the listener wrote what the intent was writing: nothing more to check
    keys = PendingKeys(GRACE_S)
    same = live("change#c1", 2, source="event") | {"etag": "other"}
    keys.observe(rec("MODIFY", base, pending_write))
    keys.observe(rec("MODIFY", pending_write, same))
    assert len(keys) == 0
    # the pipeline's own commit is no reason to re-check
    keys = PendingKeys(GRACE_S)
    keys.observe(rec("MODIFY", pending_write, live("change#c1", 2) | {"etag": "x"}))
    assert len(keys) == 0


def test_done_defer_and_the_bound() -> None:
    keys = PendingKeys(GRACE_S, capacity=2)
    for n in range(3):
        keys.observe(rec("INSERT", None, intent(None, f"change#c{n}", at_ms=ms(T0) + n)))
    assert len(keys) == 2 and keys.dropped == 1
    first = keys.due(ms(T0) + 60_000)[0]
    keys.defer(first, ms(T0) + 120_000)
    assert [k.pk for k in keys.due(ms(T0) + 61_000)] == ["change#c1"]
    keys.done(first)  # the deferred key is a new value: this one is no longer held
    assert "change#c0" in keys
    held = keys.get("change#c0")
    assert held is not None
    keys.done(held)
    assert "change#c0" not in keys


def test_oldest_names_the_earliest_pending_record_per_source() -> None:
    keys = PendingKeys(GRACE_S)
    for n, seq in enumerate((30, 10, 20)):
        keys.observe(rec("INSERT", None, intent(None, f"change#c{n}", at_ms=ms(T0)), seq=seq))
    keys.observe(rec("INSERT", None, intent(None, "change#x", at_ms=ms(T0)), seq=5, arn="other"))
    assert keys.oldest() == {
        ARN: "10",
        "other": "5",
    }


def _life(n_keys: int, rng: random.Random) -> list[ChangeRecord]:
    """Interleaved pipeline writes: some committed, some rolled back, some stuck."""
    records: list[ChangeRecord] = []
    for n in range(n_keys):
        pk = f"change#k{n}"
        it = with_tx(intent(None, pk, at_ms=ms(T0) + n), f"t{n}")
        records.append(rec("INSERT", None, it))
        fate = rng.choice(["commit", "rollback", "stuck"])
        if fate == "commit":
            records.append(rec("MODIFY", it, live(pk, 1)))
        elif fate == "rollback":
            records.append(rec("REMOVE", it, None))
    return records


def _state(keys: PendingKeys) -> set[tuple[str, str, int]]:
    return {(k.pk, k.reason, k.due_ms) for k in keys.entries()}


@settings(max_examples=40, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10_000), n_keys=st.integers(1, 12), cut=st.integers(0, 40))
def test_a_replay_from_the_oldest_pending_record_rebuilds_the_same_set(
    seed: int, n_keys: int, cut: int
) -> None:
    records = _life(n_keys, random.Random(seed))
    cut = min(cut, len(records))
    straight = PendingKeys(GRACE_S)
    for r in records:
        straight.observe(r)
    # A consumer stopped after `cut` records and checkpointed `oldest()`; its successor replays
    # from there, then goes on: same set as one that never stopped.
    before = PendingKeys(GRACE_S)
    for r in records[:cut]:
        before.observe(r)
    start = min((int(s) for s in before.oldest().values()), default=None)
    after = PendingKeys(GRACE_S)
    replay_from = (
        cut if start is None else next(i for i, r in enumerate(records) if int(r.sequence) == start)
    )
    for r in records[replay_from:]:
        after.observe(r)
    assert _state(after) == _state(straight)
    for r in records[replay_from:cut]:  # a redelivered stretch: at worst a needless check
        after.observe(r)
    assert _state(after) >= _state(straight)
    assert {k.pk for k in straight.entries()} == {
        f"change#k{n}"
        for n in range(n_keys)
        if not any(
            r.pk == f"change#k{n}" and (r.event_name == "REMOVE" or "p_tx" not in (r.new or {}))
            for r in records
        )
    }

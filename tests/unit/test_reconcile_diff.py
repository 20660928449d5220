"""reconciler/diff.py: the sorted merge of one shard, checked against a set-based oracle.

The oracle below is written from the rules (DESIGN.md invariant 6 and the module docstring),
not from `classify`: it partitions the union of keys with set operations, then reads the
outcome of each key off the partition. The merge must agree on every key, list every key
exactly once, and keep S3's order (UTF-8 bytes).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from engine import keys
from engine.store.objects import ObjectInfo
from reconciler.diff import CLASSES, Rules, classify, merge
from reconciler.sources import CacheRow

from ._hyp import FAST, key_text

PREFIXES = {"change": "changes/", "announcement": "announcements/"}
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
WINDOW_START = NOW - timedelta(days=90)
GRACE_START = NOW - timedelta(seconds=60)
RULES = Rules(
    now=NOW,
    window_start=WINDOW_START,
    grace_start=GRACE_START,
    is_document_key=lambda key: keys.key_to_doc(key, PREFIXES) is not None,
)
NOT_DRIFT = ("out_of_window", "expired", "in_flight")


def by_bytes(key: str) -> bytes:
    return key.encode()


# -- strategies ------------------------------------------------------------------------------

# The rest of a key under the prefix: document ids, and anything else S3 accepts (spaces, `+`,
# non-ASCII, astral-plane characters, `/`), with or without `.json`.
id_rests = st.from_regex(r"[A-Za-z0-9._-]{1,12}", fullmatch=True).map(lambda i: i + ".json")
odd_rests = key_text().flatmap(lambda rest: st.sampled_from([rest, rest + ".json"]))
prefixes = st.sampled_from(sorted(PREFIXES.values()))
key_sets = st.lists(
    st.tuples(prefixes, st.one_of(id_rests, odd_rests)).map("".join),
    unique=True,
    max_size=40,
)
ETAGS = ("e0", "e1", "e2")

# Times around each boundary, the boundary itself included.
last_modified = st.sampled_from(
    [
        WINDOW_START - timedelta(days=30),
        WINDOW_START - timedelta(microseconds=1),
        WINDOW_START,  # exactly at the start: out of the window (`<=`)
        WINDOW_START + timedelta(microseconds=1),
        NOW - timedelta(days=1),
        NOW,
    ]
)
expires = st.sampled_from(
    [
        int(NOW.timestamp()) - 86_400,
        int(NOW.timestamp()),  # exactly now: expired (`<=`)
        int(NOW.timestamp()) + 1,
        int(NOW.timestamp()) + 86_400 * 30,
    ]
)
pending = st.sampled_from(
    [
        None,
        GRACE_START - timedelta(hours=1),
        GRACE_START,  # exactly at the grace start: old enough to repair (`>` is young)
        GRACE_START + timedelta(milliseconds=1),
        NOW,
    ]
)


@dataclass(frozen=True)
class Sides:
    s3: list[ObjectInfo]
    cache: list[CacheRow]


@st.composite
def sides(draw: st.DrawFn) -> Sides:
    """Two key sets drawn from one pool (so they overlap), each side sorted by UTF-8 bytes."""
    pool = draw(key_sets)
    in_s3 = [k for k in pool if draw(st.booleans())]
    in_cache = [k for k in pool if draw(st.booleans())]
    s3 = [
        ObjectInfo(
            key, draw(st.sampled_from(ETAGS)), draw(st.integers(0, 10**6)), draw(last_modified)
        )
        for key in sorted(in_s3, key=by_bytes)
    ]
    cache = [
        CacheRow(
            key,
            draw(st.sampled_from(ETAGS)),
            draw(st.integers(0, 10**6)),
            draw(last_modified),
            draw(expires),
            draw(pending),
        )
        for key in sorted(in_cache, key=by_bytes)
    ]
    return Sides(s3, cache)


# -- the oracle ------------------------------------------------------------------------------


def oracle(s3: list[ObjectInfo], cache: list[CacheRow]) -> dict[str, str]:
    """Outcome of every key, from set algebra on the two sides."""
    S = {r.key: r for r in s3}
    C = {r.key: r for r in cache}
    now = NOW.timestamp()

    expired = {k for k, r in C.items() if r.expires_at <= now}
    cached = set(C) - expired  # what the cache really holds
    young = {k for k in cached if (at := C[k].pending_at) is not None and at > GRACE_START}
    old = {k for k, r in S.items() if r.last_modified <= WINDOW_START}
    bad_keys = {k for k in S if keys.key_to_doc(k, PREFIXES) is None}

    in_window = set(S) - old
    invalid = in_window & bad_keys
    documents = in_window - bad_keys
    missing = documents - cached
    both = documents & cached
    in_sync = {k for k in both if S[k].etag == C[k].etag}
    differ = both - in_sync
    only_cache = cached - set(S)

    partition = {
        "missing": missing,
        "stale": differ - young,
        "orphaned": only_cache - young,
        "invalid": invalid,
        "in_sync": in_sync,
        "out_of_window": old,
        "expired": expired - set(S),
        "in_flight": (differ & young) | (only_cache & young),
    }
    outcome: dict[str, str] = {}
    for name, members in partition.items():
        for key in members:
            assert key not in outcome, f"oracle: {key!r} in {outcome[key]} and {name}"
            outcome[key] = name
    assert set(outcome) == set(S) | set(C), "oracle: every key gets one outcome"
    return outcome


def expected_cache_side(key: str, s3: dict[str, ObjectInfo], cache: dict[str, CacheRow]) -> object:
    """An expired entry beside an S3 object is as good as absent; otherwise the row itself."""
    row = cache.get(key)
    if row is not None and key in s3 and row.expires_at <= NOW.timestamp():
        return None
    return row


# -- property --------------------------------------------------------------------------------


@FAST
@given(sides())
@example(Sides([], []))
@example(
    Sides(
        [
            ObjectInfo("changes/a b+c.json", "e1", 1, NOW),
            ObjectInfo("changes/é.json", "e1", 1, NOW),
        ],
        [CacheRow("changes/a b+c.json", "e1", 1, NOW, 2**40, None)],
    )
)
def test_merge_matches_the_set_oracle(sides: Sides) -> None:
    verdicts = list(merge(iter(sides.s3), iter(sides.cache), RULES))

    union = {r.key for r in sides.s3} | {r.key for r in sides.cache}
    got_keys = [v.key for v in verdicts]
    assert len(got_keys) == len(set(got_keys)), "a key appeared twice"
    assert set(got_keys) == union, "a key was lost or invented"
    assert got_keys == sorted(union, key=by_bytes), "not in S3 (UTF-8 byte) order"

    expected = oracle(sides.s3, sides.cache)
    s3_by_key = {r.key: r for r in sides.s3}
    cache_by_key = {r.key: r for r in sides.cache}
    for v in verdicts:
        assert v.outcome == expected[v.key], (v.key, v.outcome, expected[v.key])
        assert v.s3 is s3_by_key.get(v.key)
        assert v.cache is expected_cache_side(v.key, s3_by_key, cache_by_key)
        assert v.outcome in CLASSES + NOT_DRIFT


@FAST
@given(sides())
def test_merge_is_classify_of_the_pairs(sides: Sides) -> None:
    """The merge pairs equal keys and nothing else: the same verdicts as classifying the
    outer join built with a dict."""
    s3_by_key = {r.key: r for r in sides.s3}
    cache_by_key = {r.key: r for r in sides.cache}
    joined = sorted(set(s3_by_key) | set(cache_by_key), key=by_bytes)
    expected = [classify(s3_by_key.get(k), cache_by_key.get(k), RULES) for k in joined]
    assert list(merge(sides.s3, sides.cache, RULES)) == expected


def test_merge_streams_without_reading_ahead() -> None:
    """Flat memory: the merge pulls one row at a time, so it works on endless sides."""
    pulled = {"s3": 0, "cache": 0}

    def endless_s3() -> Iterator[ObjectInfo]:
        for n in itertools.count():
            pulled["s3"] += 1
            yield ObjectInfo(f"changes/K{n:09d}.json", "e", 1, NOW)

    def endless_cache() -> Iterator[CacheRow]:
        for n in itertools.count(0, 2):
            pulled["cache"] += 1
            yield CacheRow(f"changes/K{n:09d}.json", "e", 1, NOW, 2**40, None)

    first = list(itertools.islice(merge(endless_s3(), endless_cache(), RULES), 1000))
    assert [v.outcome for v in first[:4]] == ["in_sync", "missing", "in_sync", "missing"]
    assert pulled["s3"] <= 1001 and pulled["cache"] <= 502


# -- explicit cases: one per class and per not-drift outcome ---------------------------------

FRESH = NOW - timedelta(days=1)
LIVE = int(NOW.timestamp()) + 86_400
GONE = int(NOW.timestamp()) - 1
DOC = "changes/CHG-1.json"


def s3row(key: str = DOC, etag: str = "e1", lm: datetime = FRESH) -> ObjectInfo:
    return ObjectInfo(key, etag, 10, lm)


def crow(
    key: str = DOC, etag: str = "e1", expires_at: int = LIVE, pending: datetime | None = None
) -> CacheRow:
    return CacheRow(key, etag, 10, FRESH, expires_at, pending)


YOUNG = NOW - timedelta(seconds=5)
OLD = NOW - timedelta(minutes=10)


@pytest.mark.parametrize(
    ("s3", "cache", "outcome"),
    [
        pytest.param(s3row(), None, "missing", id="missing"),
        pytest.param(s3row(), crow(etag="e0"), "stale", id="stale"),
        pytest.param(None, crow(), "orphaned", id="orphaned"),
        pytest.param(s3row("changes/not an id.json"), None, "invalid", id="invalid-key"),
        pytest.param(s3row("changes/CHG-1.txt"), None, "invalid", id="invalid-suffix"),
        pytest.param(s3row("changes/é+1.json"), None, "invalid", id="invalid-unicode"),
        pytest.param(s3row(), crow(), "in_sync", id="in_sync"),
        pytest.param(s3row(), crow(pending=YOUNG), "in_sync", id="in_sync-with-intent"),
        # not drift
        pytest.param(
            s3row(lm=WINDOW_START - timedelta(days=1)), None, "out_of_window", id="out_of_window"
        ),
        pytest.param(s3row(lm=WINDOW_START), None, "out_of_window", id="out_of_window-boundary"),
        pytest.param(
            s3row(lm=WINDOW_START, etag="e9"), crow(), "out_of_window", id="out_of_window-stale"
        ),
        pytest.param(
            s3row("changes/bad key.json", lm=WINDOW_START),
            None,
            "out_of_window",
            id="out_of_window-before-invalid",
        ),
        pytest.param(None, crow(expires_at=GONE), "expired", id="expired"),
        pytest.param(None, crow(expires_at=int(NOW.timestamp())), "expired", id="expired-boundary"),
        pytest.param(
            None, crow(expires_at=GONE, pending=YOUNG), "expired", id="expired-with-intent"
        ),
        pytest.param(s3row(), crow(expires_at=GONE), "missing", id="expired-entry-is-missing"),
        pytest.param(
            s3row(), crow(expires_at=GONE, pending=YOUNG), "missing", id="expired-intent-missing"
        ),
        pytest.param(None, crow(pending=YOUNG), "in_flight", id="in_flight-orphan"),
        pytest.param(s3row(), crow(etag="e0", pending=YOUNG), "in_flight", id="in_flight-stale"),
        pytest.param(None, crow(pending=OLD), "orphaned", id="old-intent-orphaned"),
        pytest.param(s3row(), crow(etag="e0", pending=OLD), "stale", id="old-intent-stale"),
        pytest.param(
            s3row(), crow(etag="e0", pending=GRACE_START), "stale", id="intent-at-grace-boundary"
        ),
    ],
)
def test_each_outcome(s3: ObjectInfo | None, cache: CacheRow | None, outcome: str) -> None:
    verdicts = list(merge([s3] if s3 else [], [cache] if cache else [], RULES))
    assert verdicts == [classify(s3, cache, RULES)]
    (verdict,) = verdicts
    assert verdict.outcome == outcome
    assert verdict.key == (s3 or cache).key  # type: ignore[union-attr]
    assert verdict.s3 is s3
    if outcome == "missing" and cache is not None:
        assert verdict.cache is None  # the expired entry does not count
    else:
        assert verdict.cache is cache
    assert oracle([s3] if s3 else [], [cache] if cache else []) == {verdict.key: outcome}


def test_byte_order_not_code_unit_order() -> None:
    """S3 lists by UTF-8 bytes: 'z' < 'é' < '\uffff' < an astral character. A merge that
    compared in another order would split a pair into a `missing` and an `orphaned`."""
    names = ["changes/z.json", "changes/é.json", "changes/\uffff.json", "changes/\U0001f600.json"]
    assert names == sorted(names, key=by_bytes)
    s3 = [s3row(k) for k in names]
    cache = [crow(k) for k in names]
    verdicts = list(merge(s3, cache, RULES))
    assert [v.key for v in verdicts] == names
    # Only `z` is a document id; the others are invalid, each paired with its cache row.
    assert [v.outcome for v in verdicts] == ["in_sync", "invalid", "invalid", "invalid"]
    assert all(v.cache is c for v, c in zip(verdicts, cache, strict=True))


def test_a_mixed_shard_in_order() -> None:
    s3 = [
        s3row("changes/A.json"),
        s3row("changes/B.json", etag="new"),
        s3row("changes/C.json", lm=WINDOW_START - timedelta(days=3)),
        s3row("changes/D D.json"),
        s3row("changes/F.json"),
    ]
    cache = [
        crow("changes/B.json", etag="old"),
        crow("changes/E.json"),
        crow("changes/EE.json", expires_at=GONE),
        crow("changes/F.json"),
        crow("changes/G.json", pending=YOUNG),
    ]
    got = [(v.key.removeprefix("changes/"), v.outcome) for v in merge(s3, cache, RULES)]
    assert got == [
        ("A.json", "missing"),
        ("B.json", "stale"),
        ("C.json", "out_of_window"),
        ("D D.json", "invalid"),
        ("E.json", "orphaned"),
        ("EE.json", "expired"),
        ("F.json", "in_sync"),
        ("G.json", "in_flight"),
    ]


# -- the customer index: drift of the document --------------------------------------------------


def with_index(row: CacheRow, customers: tuple[str, ...], *entries: tuple[str, str]) -> CacheRow:
    return replace(
        row, customers=customers, index=tuple((c, e, row.expires_at) for c, e in entries)
    )


@pytest.mark.parametrize(
    ("customers", "entries", "expected"),
    [
        (("a", "b"), (("a", "e1"), ("b", "e1")), None),
        (("a", "b"), (("a", "e1"),), {"missing": ("b",)}),
        (("a",), (("a", "e1"), ("z", "e1")), {"extra": ("z",)}),
        (("a", "b"), (("a", "e1"), ("b", "old")), {"stale": ("b",)}),
        ((), (), None),
    ],
)
def test_index_entries_that_disagree_with_the_image_are_drift_of_the_document(
    customers: tuple[str, ...],
    entries: tuple[tuple[str, str], ...],
    expected: dict[str, tuple[str, ...]] | None,
) -> None:
    verdict = classify(s3row(), with_index(crow(), customers, *entries), RULES)
    assert verdict.index == expected
    assert verdict.outcome == ("in_sync" if expected is None else "stale")
    assert verdict.index_only == (expected is not None)


def test_entries_left_without_a_live_entry_are_orphaned_or_missing() -> None:
    left = CacheRow(DOC, None, None, None, 0, None, index=(("a", "e1", LIVE),), live=False)
    gone = classify(None, left, RULES)
    assert (gone.outcome, gone.index, gone.index_only) == ("orphaned", {"extra": ("a",)}, True)
    back = classify(s3row(), left, RULES)
    assert (back.outcome, back.index, back.index_only) == ("missing", {"extra": ("a",)}, False)
    expired = CacheRow(DOC, None, None, None, 0, None, index=(("a", "e1", 1),), live=False)
    assert classify(None, expired, RULES).outcome == "expired"

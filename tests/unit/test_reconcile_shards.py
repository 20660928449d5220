"""reconciler/shards.py (and the per-shard sources): every key under a prefix belongs to exactly
one shard, whatever its first character; the S3 side's StartAfter never skips a key of its
shard; the cache side's partitions line up with the S3 side's ranges; the shard count follows
`reconcile_shards_per_type`."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from engine import keys
from engine.exceptions import ConfigError
from engine.settings import load_settings
from engine.store.item import CacheItem, IndexEntry, from_index
from engine.store.objects import ObjectInfo
from reconciler.shards import ID_CHARS, Shard, plan, start_after
from reconciler.sources import cache_rows, s3_rows

from ._hyp import FAST

PREFIXES = {"change": "changes/", "announcement": "announcements/"}
NOW = datetime(2025, 3, 1, tzinfo=UTC)
EDGE_COUNTS = [1, 2, 4, 64, 65, 66, 100, 10_000]


def by_bytes(key: str) -> bytes:
    return key.encode()


def shards_of(shards: list[Shard], prefix: str) -> list[Shard]:
    return [s for s in shards if s.prefix == prefix]


# Keys under a prefix: valid ids, first characters outside the id alphabet (below `-`, between
# its runs such as `/` `@` `[` `` ` ``, above `z`), non-ASCII and astral-plane characters, the
# empty rest (the key equal to the prefix).
OUTSIDE = " !+/:@[\\]^`{|}~\x00\x7fé日\uffff\U00010000\U0001f600\U0010ffff"
first_chars = st.one_of(
    st.sampled_from(ID_CHARS),
    st.sampled_from(OUTSIDE),
    st.characters(exclude_categories=["Cs"], codec="utf-8"),
)
rests = st.one_of(
    st.just(""),
    st.tuples(first_chars, st.text(max_size=8)).map("".join),
    st.from_regex(r"[A-Za-z0-9._-]{1,10}\.json", fullmatch=True),
)
type_names = st.sampled_from(sorted(PREFIXES))
per_types = st.one_of(st.sampled_from(EDGE_COUNTS), st.integers(1, 200))


# -- plan: coverage --------------------------------------------------------------------------


@FAST
@given(type_names, rests, per_types)
@example("change", "", 4)
@example("change", "\U0010ffff", 65)
@example("announcement", " x", 4)
@example("change", "/", 65)
@example("change", "-", 65)
@example("change", "z\U0001f600", 4)
def test_every_key_is_in_exactly_one_shard(type_name: str, rest: str, per_type: int) -> None:
    shards = plan(PREFIXES, per_type)
    key = PREFIXES[type_name] + rest
    owners = [s for s in shards if s.contains(key)]
    assert len(owners) == 1, (key, [s.name for s in owners])
    (owner,) = owners
    assert (owner.type, owner.prefix) == (type_name, PREFIXES[type_name])
    # The S3 listing of that shard starts below the key: StartAfter never skips it.
    assert start_after(owner).encode() < key.encode()
    # A key whose first character is a valid id character lies in the shard that owns that
    # character's key-index partition (where the cache side looks for it).
    if rest and rest[0] in ID_CHARS:
        assert rest[0] in owner.chars
        assert keys.key_shard(owner.prefix, rest) in {owner.prefix + c for c in owner.chars}


@FAST
@given(st.lists(st.tuples(type_names, rests), max_size=60), per_types)
def test_plan_partitions_any_key_set(entries: list[tuple[str, str]], per_type: int) -> None:
    all_keys = {PREFIXES[t] + rest for t, rest in entries}
    shards = plan(PREFIXES, per_type)
    seen: list[str] = []
    for shard in shards:
        seen += [k for k in all_keys if shard.contains(k)]
    assert sorted(seen) == sorted(all_keys)


@pytest.mark.parametrize("per_type", EDGE_COUNTS)
def test_shards_tile_the_id_alphabet_in_order(per_type: int) -> None:
    for prefix in PREFIXES.values():
        shards = shards_of(plan(PREFIXES, per_type), prefix)
        assert "".join(s.chars for s in shards) == ID_CHARS  # every partition once, in order
        assert all(s.chars for s in shards)
        assert shards[0].first is None and shards[-1].stop is None
        for left, right in itertools.pairwise(shards):
            assert left.stop == right.first == right.chars[0]  # contiguous, no gap, no overlap
        for shard in shards:
            if shard.first is not None:
                assert shard.first == shard.chars[0]


def test_id_alphabet_is_in_byte_order() -> None:
    assert sorted(ID_CHARS, key=by_bytes) == list(ID_CHARS)
    assert set(ID_CHARS) == set("-._0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
    assert len(ID_CHARS) == 65


# -- plan: counts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("per_type", "count"),
    [(1, 1), (4, 4), (65, 65), (66, 65), (100, 65), (10_000, 65), (0, 1), (-3, 1)],
)
def test_shard_count_at_edge_values(per_type: int, count: int) -> None:
    shards = plan(PREFIXES, per_type)
    assert len(shards) == count * len(PREFIXES)
    for type_name, prefix in PREFIXES.items():
        mine = shards_of(shards, prefix)
        assert len(mine) == count
        assert {s.type for s in mine} == {type_name}
    if count == 1:
        (one, _) = shards
        assert (one.first, one.stop, one.chars) == (None, None, ID_CHARS)
        assert start_after(one) == ""
    if count == 65:
        assert [s.chars for s in shards_of(shards, "changes/")] == list(ID_CHARS)


def test_per_type_split_is_balanced_at_default() -> None:
    sizes = [len(s.chars) for s in shards_of(plan(PREFIXES, 4), "changes/")]
    assert sum(sizes) == 65
    assert max(sizes) - min(sizes) <= 3  # 17 17 17 14


def test_shard_count_equals_the_setting_for_every_allowed_value() -> None:
    """`plan` promises `per_type` shards per prefix for every value the setting allows (1-65).
    With slices of ceil(65 / per_type) characters, many values give fewer shards: 12 → 11,
    40 → 33, 64 → 33 (half the configured parallelism, silently)."""
    wrong = {
        n: len(shards_of(plan(PREFIXES, n), "changes/"))
        for n in range(1, 66)
        if len(shards_of(plan(PREFIXES, n), "changes/")) != n
    }
    assert wrong == {}, f"per_type → shards actually planned: {wrong}"


def test_the_setting_bounds() -> None:
    assert load_settings(None).reconcile.shards_per_type == 4
    for ok in (1, 65):
        assert (
            load_settings(None, reconcile={"shards_per_type": ok}).reconcile.shards_per_type == ok
        )
    for bad in (0, 66):
        with pytest.raises(ConfigError, match=r"reconcile\.shards_per_type"):
            load_settings(None, reconcile={"shards_per_type": bad})


# -- start_after -----------------------------------------------------------------------------


@pytest.mark.parametrize("per_type", [2, 4, 65])
def test_start_after_is_just_below_the_shard(per_type: int) -> None:
    for shard in plan(PREFIXES, per_type):
        after = start_after(shard)
        if shard.first is None:
            assert after == ""
            continue
        assert after.startswith(shard.prefix)
        # Below the smallest key of the shard (prefix + its first character), so that key is
        # listed, and above every key of the shards before it that starts with a lower
        # character than the one just before `first` (those are not re-listed).
        assert after.encode() < (shard.prefix + shard.first).encode()
        assert not shard.contains(after)
        below = chr(ord(shard.first) - 1)
        assert (shard.prefix + below).encode() < after.encode()


# -- the per-shard sources, with a listing and a key index that behave like S3 and DynamoDB --


class FakeObjects:
    """ListObjectsV2 semantics: keys under Prefix, strictly after StartAfter, in byte order."""

    def __init__(self, all_keys: set[str]) -> None:
        self.keys = sorted(all_keys, key=by_bytes)
        self.encoded = [k.encode() for k in self.keys]

    def list(self, prefix: str, start_after: str = "") -> Iterator[ObjectInfo]:
        start = bisect.bisect_right(self.encoded, start_after.encode()) if start_after else 0
        for key in self.keys[start:]:
            if key.startswith(prefix):
                yield ObjectInfo(key, "etag", 1, NOW)


class FakeCache:
    """The key index: entries by partition (`kpk`), sorted by `s3_key` (byte order)."""

    def __init__(self, all_keys: set[str]) -> None:
        self.partitions: dict[str, list[dict[str, Any]]] = {}
        for key in sorted(all_keys, key=by_bytes):
            doc = keys.key_to_doc(key, PREFIXES)
            assert doc is not None
            prefix = PREFIXES[doc[0]]
            self.partitions.setdefault(keys.key_shard(prefix, doc[1]), []).append(
                {
                    "pk": keys.cache_pk(*doc),
                    "s3_key": key,
                    "etag": "e",
                    "size": 1,
                    "expires_at": 2**40,
                }
            )

    def key_index(self, partition: str) -> Iterator[CacheItem | IndexEntry]:
        yield from map(from_index, self.partitions.get(partition, []))


@FAST
@given(st.lists(st.tuples(type_names, rests), max_size=60), per_types)
@example([("change", ""), ("change", "\U0010ffff"), ("change", "/x"), ("change", "A")], 65)
@example([("change", "/\U0010ffffx"), ("change", "0"), ("change", ".")], 65)  # past StartAfter
def test_s3_side_of_the_shards_lists_every_key_once(
    entries: list[tuple[str, str]], per_type: int
) -> None:
    all_keys = {PREFIXES[t] + rest for t, rest in entries} | {"_docsync/reports/x.json", "zzz"}
    objects = FakeObjects(all_keys)
    listed: list[str] = []
    for shard in plan(PREFIXES, per_type):
        rows = [r.key for r in s3_rows(objects, shard)]  # type: ignore[arg-type]
        assert rows == sorted(rows, key=by_bytes)
        assert all(shard.contains(k) for k in rows)
        listed += rows
    under = sorted((k for k in all_keys if k.startswith(tuple(PREFIXES.values()))), key=by_bytes)
    assert sorted(listed, key=by_bytes) == under
    assert len(listed) == len(under)


doc_keys = st.tuples(type_names, st.from_regex(r"[A-Za-z0-9._-]{1,10}", fullmatch=True)).map(
    lambda t: keys.s3_key(PREFIXES[t[0]], t[1])
)


@FAST
@given(st.sets(doc_keys, max_size=60), per_types)
def test_cache_side_pairs_with_the_s3_side(all_keys: set[str], per_type: int) -> None:
    """For document keys, each shard's cache side holds exactly the keys its S3 side lists,
    in the same (byte) order: the merge can pair them."""
    objects, cache = FakeObjects(all_keys), FakeCache(all_keys)
    seen: list[str] = []
    for shard in plan(PREFIXES, per_type):
        from_s3 = [r.key for r in s3_rows(objects, shard)]  # type: ignore[arg-type]
        from_cache = [r.key for r in cache_rows(cache, shard)]  # type: ignore[arg-type]
        assert from_cache == from_s3
        seen += from_cache
    assert sorted(seen) == sorted(all_keys)


def test_cache_rows_map_the_index_items() -> None:
    class OnePartition:
        def key_index(self, partition: str) -> Iterator[CacheItem | IndexEntry]:
            return map(from_index, self.projected(partition))  # as the store reads them

        def projected(self, partition: str) -> Iterator[dict[str, Any]]:
            if partition != "changes/C":
                return
            yield {
                "pk": "change#C1",
                "s3_key": "changes/C1.json",
                "etag": "e",
                "size": 7,
                "s3_last_modified": 1_700_000_000_123,
                "expires_at": 99,
            }
            yield {
                "pk": "change#C2",
                "s3_key": "changes/C2.json",
                "etag": "e",
                "size": 7,
                "s3_last_modified": 1_700_000_000_000,
                "expires_at": 99,
                "p_tx": "tx",
                "p_at": 1_700_000_001_500,
            }
            yield {
                "pk": "change#C3",
                "s3_key": "changes/C3.json",
                "etag": "e",
                "p_at": 1_700_000_001_500,
            }

    (shard,) = plan({"change": "changes/"}, 1)
    rows = list(cache_rows(OnePartition(), shard))  # type: ignore[arg-type]
    assert [r.key for r in rows] == ["changes/C1.json", "changes/C2.json", "changes/C3.json"]
    assert rows[0].last_modified == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
    assert (rows[0].size, rows[0].expires_at, rows[0].pending_at) == (7, 99, None)
    assert rows[1].pending_at == datetime(2023, 11, 14, 22, 13, 21, 500000, tzinfo=UTC)
    # No intent (no p_tx): no pending time; missing attributes map to None / 0.
    assert (rows[2].pending_at, rows[2].size, rows[2].last_modified, rows[2].expires_at) == (
        None,
        None,
        None,
        0,
    )

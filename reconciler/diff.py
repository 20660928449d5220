"""The sorted merge (pure): two iterators in S3 key order in, drift records out.

Classes (DESIGN.md invariant 6): `missing` (in S3, not cached), `stale` (ETag differs),
`orphaned` (cached, not in S3), `invalid` (an S3 object that is not a document: reported, never
cached, never deleted), `in_sync`. Not drift: objects older than the window, expired entries
(DynamoDB's TTL deletes lazily), and entries with a write in flight younger than the grace
period (`skipped`). Keys compare as UTF-8 bytes, as S3 and DynamoDB order them.

Customer index: a document whose index entries disagree with its committed image (an entry
`missing` for one of its customers, an `extra` one for a customer it does not list or for a
document that is not live, a `stale` one with another ETag or expiry) is drift of that
document: `in_sync` becomes `stale`, and `Verdict.index` says which entries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from engine.store.objects import ObjectInfo
from reconciler.sources import CacheRow

DriftClass = Literal["missing", "stale", "orphaned", "invalid", "in_sync"]
NotDrift = Literal["out_of_window", "expired", "in_flight"]
CLASSES: tuple[DriftClass, ...] = ("missing", "stale", "orphaned", "invalid", "in_sync")


@dataclass(frozen=True, slots=True)
class Verdict:
    key: str
    outcome: DriftClass | NotDrift
    s3: ObjectInfo | None
    cache: CacheRow | None
    index: dict[str, tuple[str, ...]] | None = None  # missing/extra/stale customers
    index_only: bool = False  # the document itself is in sync (or gone): only its index drifts


@dataclass(frozen=True, slots=True)
class Rules:
    now: datetime
    window_start: datetime  # S3 objects last modified before this are out of the window
    grace_start: datetime  # intents begun after this are left alone
    is_document_key: Callable[[str], bool]


def merge(s3: Iterable[ObjectInfo], cache: Iterable[CacheRow], rules: Rules) -> Iterator[Verdict]:
    """Walk both sides once, in order; memory stays constant whatever their length."""
    s3_it, cache_it = iter(s3), iter(cache)
    s = next(s3_it, None)
    c = next(cache_it, None)
    while s is not None or c is not None:
        if c is None or (s is not None and s.key.encode() < c.key.encode()):
            assert s is not None
            yield classify(s, None, rules)
            s = next(s3_it, None)
        elif s is None or c.key.encode() < s.key.encode():
            yield classify(None, c, rules)
            c = next(cache_it, None)
        else:
            yield classify(s, c, rules)
            s, c = next(s3_it, None), next(cache_it, None)


def classify(s3: ObjectInfo | None, cache: CacheRow | None, rules: Rules) -> Verdict:
    drift = index_drift(cache, rules.now)
    if cache is not None and not cache.live:  # only index entries left under this key
        if s3 is None:
            outcome: DriftClass | NotDrift = "orphaned" if drift else "expired"
            return Verdict(cache.key, outcome, None, cache, drift, index_only=True)
        verdict = _classify(s3, None, rules)
        return Verdict(verdict.key, verdict.outcome, s3, cache, drift)
    verdict = _classify(s3, cache, rules)
    if drift is None:
        return verdict
    if verdict.outcome == "in_sync":
        return Verdict(verdict.key, "stale", s3, cache, drift, index_only=True)
    return Verdict(verdict.key, verdict.outcome, verdict.s3, verdict.cache, drift)


def index_drift(cache: CacheRow | None, now: datetime) -> dict[str, tuple[str, ...]] | None:
    """Which index entries disagree with the row's committed image (expired ones are ignored:
    they expire with their document, and queries skip them)."""
    if cache is None:
        return None
    found = {c: (etag, exp) for c, etag, exp in cache.index if exp > now.timestamp()}
    alive = cache.live and cache.etag is not None and cache.expires_at > now.timestamp()
    expected = set(cache.customers) if alive else set()
    drift = {
        "missing": tuple(sorted(expected - found.keys())),
        "extra": tuple(sorted(found.keys() - expected)),
        "stale": tuple(
            sorted(c for c in expected & found.keys() if found[c] != (cache.etag, cache.expires_at))
        ),
    }
    return {k: v for k, v in drift.items() if v} or None


def _classify(s3: ObjectInfo | None, cache: CacheRow | None, rules: Rules) -> Verdict:
    key = s3.key if s3 is not None else cache.key  # type: ignore[union-attr]
    if cache is not None and cache.expires_at <= rules.now.timestamp():
        cache = None if s3 is not None else cache
        if s3 is None:
            return Verdict(key, "expired", None, cache)
    in_flight = (
        cache is not None and cache.pending_at is not None and cache.pending_at > rules.grace_start
    )
    if s3 is None:
        assert cache is not None
        return Verdict(key, "in_flight" if in_flight else "orphaned", None, cache)
    if s3.last_modified <= rules.window_start:
        return Verdict(key, "out_of_window", s3, cache)
    if not rules.is_document_key(key):
        return Verdict(key, "invalid", s3, cache)
    if cache is None:
        return Verdict(key, "missing", s3, None)
    if cache.etag == s3.etag:
        return Verdict(key, "in_sync", s3, cache)
    return Verdict(key, "in_flight" if in_flight else "stale", s3, cache)

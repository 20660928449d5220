"""L1 in isolation: the staleness bound, the byte budget, tickets, expiry, invalidation."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from engine import metrics
from engine.l1 import L1Cache
from tests.unit._hyp import FAST


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cache(max_bytes: int = 1000, staleness: float = 1.0) -> tuple[L1Cache, Clock, Clock]:
    mono, wall = Clock(), Clock()
    return L1Cache(max_bytes, staleness, clock=mono, wall=wall), mono, wall


def sample(kind: str, outcome: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "docsync_l1_requests_total", {"kind": kind, "outcome": outcome}
    )
    return value or 0.0


def test_a_value_is_served_until_its_read_is_older_than_the_bound() -> None:
    l1, mono, _ = cache(staleness=1.0)
    ticket = l1.ticket()
    mono.now += 0.4  # the read took 0.4 s: its age counts from when it was sent
    assert l1.put(("get", "change", "a"), b"v1", 10, ticket, expires_at=1e12)
    hits = sample("get", "hit")
    mono.now += 0.6
    assert l1.get(("get", "change", "a")) == b"v1"
    assert sample("get", "hit") == hits + 1
    mono.now += 0.001
    assert l1.get(("get", "change", "a")) is None
    assert len(l1) == 0 and l1.bytes == 0


def test_a_read_that_raced_an_invalidation_is_not_kept() -> None:
    l1, _, _ = cache()
    ticket = l1.ticket()
    l1.invalidate("change", "a")  # a write of this process landed while the read was out
    assert not l1.put(("get", "change", "a"), b"old", 10, ticket, expires_at=1e12)
    assert l1.get(("get", "change", "a")) is None


def test_expired_entries_are_never_served() -> None:
    l1, _, wall = cache()
    assert l1.put(("get", "change", "a"), b"v", 10, l1.ticket(), expires_at=wall.now + 0.5)
    assert not l1.put(("get", "change", "b"), b"v", 10, l1.ticket(), expires_at=wall.now)
    wall.now += 0.5
    assert l1.get(("get", "change", "a")) is None


def test_invalidation_drops_the_document_and_every_page_but_other_gets_stay() -> None:
    l1, _, _ = cache()
    for key in [("get", "change", "a"), ("get", "change", "b"), ("query", "x"), ("count", "y")]:
        assert l1.put(key, b"v", 10, l1.ticket(), expires_at=1e12)
    l1.invalidate("change", "a")
    assert l1.get(("get", "change", "b")) == b"v"
    assert [l1.get(k) for k in [("get", "change", "a"), ("query", "x"), ("count", "y")]] == [
        None,
        None,
        None,
    ]


def test_stream_records_invalidate_their_document_and_skip_reserved_items() -> None:
    class Record:
        def __init__(self, pk: str) -> None:
            self.pk = pk

    l1, _, _ = cache()
    for key in [("get", "change", "a"), ("get", "change", "b")]:
        l1.put(key, b"v", 10, l1.ticket(), expires_at=1e12)
    l1.on_stream_records([Record("change#a"), Record("_docsync#cix#change#b#acme")])
    assert l1.get(("get", "change", "a")) is None
    assert l1.get(("get", "change", "b")) == b"v"


@FAST
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(1, 400)), max_size=60))
def test_the_byte_budget_holds_and_evicts_least_recently_used(ops: list[Any]) -> None:
    l1, _, _ = cache(max_bytes=1000)
    held: OrderedDict[Any, int] = OrderedDict()  # the model: key → size, least recent first
    for n, size in ops:
        key = ("get", "change", str(n))
        assert (l1.get(key) is not None) == (key in held)
        if key in held:
            held.move_to_end(key)
        if l1.put(key, b"x", size, l1.ticket(), expires_at=1e12):
            held.pop(key, None)
            held[key] = size
            while sum(held.values()) > 1000:
                held.popitem(last=False)
        assert l1.bytes == sum(held.values()) <= 1000
    assert len(l1) == len(held)

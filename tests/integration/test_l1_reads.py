"""L1 against the moto server: two engines (two processes' worth), each with its own L1.

No read returns a version older than the staleness bound allows, and a process always reads
its own writes: checked over hypothesis-chosen interleavings with an injected L1 clock (no
sleeping), and with real threads under a real clock (the bound holds whatever the speed).
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from engine import keys
from engine.app import Engine
from engine.documents import Document, parse_document
from engine.exceptions import WriteConflictError
from engine.reader import Query
from engine.settings import Settings
from tests.conftest import make_settings

STALENESS = 1.0


def doc(doc_id: str, n: int, customers: tuple[str, ...] = ("acme",)) -> Document:
    now = datetime.now(UTC)
    return parse_document(
        {
            "id": doc_id,
            "object_type": "change",
            "title": f"write {n}",
            "customer_codes": list(customers),
            "status": "draft",
            "created_at": keys.iso(now - timedelta(days=1)),
            "modified_at": keys.iso(now - timedelta(seconds=1)),
        }
    )


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def l1_engine(
    settings: Settings, clock: Clock | None = None, staleness_s: float = STALENESS
) -> Engine:
    s = make_settings(str(settings.endpoint_url), l1={"mode": "on", "max_staleness_s": staleness_s})
    engine = Engine.build(s)
    assert engine.l1 is not None
    if clock is not None:
        engine.l1._clock = clock
    return engine


OPS = st.lists(
    st.tuples(
        st.sampled_from(["write", "read", "query"]), st.sampled_from([0, 1]), st.floats(0, 0.6)
    ),
    min_size=4,
    max_size=24,
)


@hyp_settings(
    max_examples=12,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=OPS)
@example(ops=[("read", 0, 0.0), ("write", 0, 0.1), ("read", 0, 0.0), ("query", 0, 0.0)])
@example(ops=[("read", 1, 0.0), ("query", 1, 0.0), ("write", 0, 0.5), ("read", 1, 0.6)])
def test_interleavings_respect_the_bound_and_own_writes(
    settings: Settings, ops: list[tuple[str, int, float]]
) -> None:
    clock = Clock()
    engines = [l1_engine(settings, clock), l1_engine(settings, clock)]
    doc_id = f"CHG-{uuid.uuid4().hex[:10]}"
    committed: list[tuple[float, int]] = []  # (L1 clock time, version), in commit order
    own = [0, 0]
    n = 0
    engines[0].pipeline.put(doc(doc_id, n))
    committed.append((clock.now, 1))
    own[0] = 1
    for op, who, advance in ops:
        clock.now += advance
        engine = engines[who]
        if op == "write":
            n += 1
            version = engine.pipeline.put(doc(doc_id, n)).version
            assert version is not None
            committed.append((clock.now, version))
            own[who] = version
            continue
        if op == "read":
            got = engine.reader.get("change", doc_id).version
        else:
            items = engine.reader.query(Query(types=("change",), customer="acme")).items
            got = next(int(i["title"].split()[-1]) + 1 for i in items if i["id"] == doc_id)
        assert got is not None
        # Every write committed more than the bound before this read must be seen.
        floor = max((v for t, v in committed if t < clock.now - STALENESS), default=1)
        assert got >= floor, (op, who, got, floor, committed)  # never older than the bound
        assert got >= own[who], (op, who, got, own)  # own writes, at once


def test_threads_in_two_engines_never_read_older_than_the_bound(settings: Settings) -> None:
    """Real threads and clock: a read that began more than the bound after a write completed
    returns that write or a newer one, in either engine; a writer reads its own write."""
    engines = [l1_engine(settings, staleness_s=0.2) for _ in range(2)]
    doc_id = "CHG-threads"
    engines[0].pipeline.put(doc(doc_id, 0))
    done: list[tuple[float, int]] = [(time.monotonic(), 1)]
    lock = threading.Lock()
    failures: list[str] = []
    stop = threading.Event()

    def writer(engine: Engine, rounds: int) -> None:
        for _ in range(rounds):
            try:
                version = engine.pipeline.put(doc(doc_id, len(done) + 1)).version
            except WriteConflictError:
                continue
            assert version is not None
            with lock:
                done.append((time.monotonic(), version))
            mine = engine.reader.get("change", doc_id).version or 0
            if mine < version:
                failures.append(f"own write {version} read back as {mine}")

    def reader(engine: Engine) -> None:
        while not stop.is_set():
            started = time.monotonic()
            with lock:
                floor = max((v for t, v in done if t < started - 0.2), default=1)
            got = engine.reader.get("change", doc_id).version or 0
            if got < floor:
                failures.append(f"read {got} < {floor}")

    readers = [threading.Thread(target=reader, args=(e,)) for e in engines for _ in range(2)]
    writers = [threading.Thread(target=writer, args=(e, 6)) for e in engines]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    assert failures == []
    assert len(done) > 3


def test_l1_never_serves_a_deleted_or_expired_document(settings: Settings) -> None:
    clock = Clock()
    a, b = l1_engine(settings, clock), l1_engine(settings, clock)
    a.pipeline.put(doc("CHG-1", 0))
    assert b.reader.get("change", "CHG-1").cache == "hit"
    assert b.reader.get("change", "CHG-1").cache == "l1"
    a.pipeline.delete("change", "CHG-1")
    assert b.reader.get("change", "CHG-1").cache == "l1"  # within the bound, like DAX
    clock.now += STALENESS + 0.01
    from engine.exceptions import NotFoundError

    with pytest.raises(NotFoundError):
        b.reader.get("change", "CHG-1")
    with pytest.raises(NotFoundError):
        a.reader.get("change", "CHG-1")  # its own delete, at once


def test_hits_misses_and_counts_from_l1(settings: Settings) -> None:
    engine = l1_engine(settings)
    engine.pipeline.put(doc("CHG-1", 0))
    q = Query(types=("change",), customer="acme")
    first, again = engine.reader.query(q), engine.reader.query(q)
    assert (first.l1, again.l1) == (False, True) and first.items == again.items
    assert engine.reader.count(q) == (1, "cache") == engine.reader.count(q)
    engine.pipeline.put(doc("CHG-2", 0))
    assert engine.reader.count(q) == (2, "cache")  # own write: counts forgotten at once
    page = engine.reader.query(q)
    assert not page.l1 and {i["id"] for i in page.items} == {"CHG-1", "CHG-2"}


def test_the_http_api_says_when_l1_answered(settings: Settings) -> None:
    from tests.integration.test_api_routes import KEY, running_api

    engine = l1_engine(settings)
    engine.pipeline.put(doc("CHG-1", 0))
    with running_api(engine) as api, api.client(KEY) as http:
        assert http.get("/v1/change/CHG-1").headers["x-docsync-cache"] == "hit"
        assert http.get("/v1/change/CHG-1").headers["x-docsync-cache"] == "l1"
        assert "x-docsync-cache" not in http.get("/v1/change").headers
        assert http.get("/v1/change").headers["x-docsync-cache"] == "l1"

"""Sharded month buckets (`month_shards` > 1), against the moto server over HTTP.

Every query combination (types, customer, status, range, page size) agrees with a brute-force
answer over the documents written, page after page (no row repeated, none skipped), and so
does `count`; a page costs one Query per shard of each month it reads; a reconcile run over a
table written with more shards refuses (test_month_shards_change.py: the other changes).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from engine import keys
from engine.app import Engine
from engine.aws import CallCounter
from engine.documents import Document
from engine.exceptions import MonthShardsChangedError
from engine.infra import Infrastructure
from engine.local_moto import EmbeddedMoto
from engine.reader import Query
from reconciler.run import Reconciler
from tests.conftest import make_settings
from tests.integration.test_customer_index import CUSTOMERS, NOW, STATUSES, brute, make

SHARDS = 4


@pytest.fixture(scope="module")
def sharded(moto_server: EmbeddedMoto) -> Iterator[tuple[Engine, dict[str, Document]]]:
    """A table written with 4 month shards: puts, updates that move documents between months,
    customers and statuses, and deletes."""
    moto_server.reset()
    settings = make_settings(moto_server.endpoint, month_shards=SHARDS)
    engine = Engine.build(settings, CallCounter())
    Infrastructure(settings, engine.clients).init()
    rng = random.Random(20261203)
    live: dict[str, Document] = {}
    docs = []
    for n in range(70):
        type_name = rng.choice(["change", "announcement"])
        age = timedelta(days=rng.choice([0, 1, 2, 20, 35, 50, 75]), seconds=rng.randrange(86400))
        docs.append(
            make(
                type_name,
                n,
                rng.sample(CUSTOMERS, rng.randint(1, 3)),
                rng.choice(STATUSES[type_name]),
                age,
            )
        )
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(engine.pipeline.put, docs))
    live = {f"{d.type}/{d.id}": d for d in docs}
    for name in rng.sample(sorted(live), 12):
        old = live[name]
        age = timedelta(days=rng.randrange(80), seconds=rng.randrange(86400))
        status = rng.choice(STATUSES[old.type])
        d = make(old.type, int(old.id[4:]), rng.sample(CUSTOMERS, 2), status, age, "v2")
        engine.pipeline.put(d)
        live[name] = d
    for name in rng.sample(sorted(live), 5):
        engine.pipeline.delete(live[name].type, live[name].id)
        del live[name]
    yield engine, live


_TYPES = st.sampled_from([("change",), ("announcement",), ("announcement", "change")])
_STATUS = st.sampled_from([None, "draft", "approved", "published", "archived"])


@hsettings(max_examples=40)
@given(
    types=_TYPES,
    customer=st.sampled_from([None, *CUSTOMERS]),
    status=_STATUS,
    since_days=st.one_of(st.none(), st.integers(0, 85)),
    until_days=st.one_of(st.none(), st.integers(0, 60)),
    limit=st.integers(1, 12),
)
def test_every_query_agrees_with_brute_force_across_shards(
    sharded: tuple[Engine, dict[str, Document]],
    types: tuple[str, ...],
    customer: str | None,
    status: str | None,
    since_days: int | None,
    until_days: int | None,
    limit: int,
) -> None:
    engine, live = sharded
    since = NOW - timedelta(days=since_days) if since_days is not None else None
    until = NOW - timedelta(days=until_days) if until_days is not None else None
    if since is not None and until is not None and since > until:
        since, until = until, since
    q = Query(types=types, customer=customer, status=status, since=since, until=until, limit=limit)
    got: list[str] = []
    token = None
    while True:
        page = engine.reader.query(q, token)
        assert len(page.items) <= limit
        got.extend(f"{i['object_type']}/{i['id']}" for i in page.items)
        token = page.next_page_token
        if not token:
            break
    lo = q.since or keys.window_start(engine.settings.cache_ttl_days)
    want = brute(live, q, lo, q.until or datetime.now(UTC))
    assert len(got) == len(set(got)), "a row repeated across pages"
    assert got == want
    assert engine.reader.count(q) == (len(want), "cache")


def test_entries_carry_their_shard(sharded: tuple[Engine, dict[str, Document]]) -> None:
    engine, live = sharded
    items = {str(i["pk"]): i for i in engine.cache.scan_all()}
    used = set()
    for d in live.values():
        item = items[keys.cache_pk(d.type, d.id)]
        n = keys.month_shard(d.id, SHARDS)
        month = keys.month_bucket(d.modified_at)
        assert item["tpk"] == f"{d.type}#{month}#{n}"
        assert item["spk"] == f"{d.type}#{d.status}#{month}#{n}"
        for c in d.customer_codes:
            entry = items[keys.index_pk(d.type, d.id, c)]
            assert entry["cpk"] == f"{c}#{d.type}#{month}#{n}"
        used.add(n)
    assert used == set(range(SHARDS))  # the hash spreads this corpus over every shard


def test_a_page_costs_one_query_per_shard_of_each_month(
    sharded: tuple[Engine, dict[str, Document]],
) -> None:
    engine, _ = sharded
    counter = CallCounter()
    probe = Engine.build(engine.settings, counter)
    since = NOW - timedelta(hours=6)
    months = len(list(keys.months_desc(since, datetime.now(UTC))))
    probe.reader.query(Query(types=("change",), since=since, limit=1000))
    assert counter.counts["dynamodb.Query"] == SHARDS * months


def test_reconcile_refuses_fewer_shards_than_the_table_was_written_with(
    sharded: tuple[Engine, dict[str, Document]],
) -> None:
    engine, _ = sharded
    for count in (2, 3):
        other = Engine.build(engine.settings.model_copy(update={"month_shards": count}))
        with pytest.raises(MonthShardsChangedError, match=f"month_shards = {count}"):
            Reconciler(other).run("report")
    assert Reconciler(engine).run("report").drift == 0

"""Changing `month_shards` on a live table: from 1 to n the entries written before sit in
buckets the new count never queries, so a reconcile run refuses (and says what to do); from
m > 1 to n > m every old bucket is among the new ones, so queries stay exact with no reindex."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine import keys
from engine.app import Engine
from engine.documents import Document
from engine.exceptions import MonthShardsChangedError
from engine.reader import Query
from reconciler.run import Reconciler
from tests.integration.test_customer_index import brute, make


def _doc(n: int, customers: list[str], status: str, age: timedelta) -> Document:
    return make("change", n, customers, status, age)


def _shards(engine: Engine, count: int) -> Engine:
    return Engine.build(engine.settings.model_copy(update={"month_shards": count}))


def test_from_unsharded_to_sharded_reconcile_refuses(engine: Engine) -> None:
    for n in range(6):
        engine.pipeline.put(_doc(n, ["acme"], "draft", timedelta(days=n * 7)))
    with pytest.raises(MonthShardsChangedError, match=r"docs/scaling\.md"):
        Reconciler(_shards(engine, 4)).run("report")
    assert Reconciler(engine).run("report").drift == 0  # the count it was written with


def test_growing_from_two_shards_to_more_keeps_queries_exact(engine: Engine) -> None:
    two, five = _shards(engine, 2), _shards(engine, 5)
    live: dict[str, Document] = {}
    for n in range(12):
        d = _doc(n, ["acme"], "draft", timedelta(days=n * 3, hours=n))
        two.pipeline.put(d)
        live[f"change/{d.id}"] = d
    for n in range(4):  # rewritten under five shards: each moves to its new bucket
        d = _doc(n, ["acme", "stark"], "approved", timedelta(hours=n + 1))
        five.pipeline.put(d)
        live[f"change/{d.id}"] = d
    since = keys.window_start(engine.settings.cache_ttl_days)
    for q in (
        Query(types=("change",), limit=5),
        Query(types=("change",), customer="acme", limit=3),
        Query(types=("change",), status="draft", limit=2),
    ):
        got: list[str] = []
        token = None
        while True:
            page = five.reader.query(q, token)
            got.extend(f"change/{i['id']}" for i in page.items)
            token = page.next_page_token
            if not token:
                break
        assert got == brute(live, q, since, datetime.now(UTC))
    assert Reconciler(five).run("report").drift == 0

"""Invariant 4 and queries, against a moto server over HTTP."""

from __future__ import annotations

import itertools
import json
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine import keys
from engine.app import Engine
from engine.documents import Document, parse_document
from engine.exceptions import InvalidPageTokenError, NotFoundError, QueryOutsideWindowError
from engine.reader import Query
from engine.sample import sample_documents
from engine.settings import Settings
from engine.store.item import serialize
from reconciler.backfill import backfill
from tests.conftest import make_settings

NOW = datetime.now(UTC)


def put_direct(engine: Engine, d: Document) -> None:
    """A write that bypasses the pipeline (another application): S3 only."""
    engine.objects.put(keys.s3_key(engine.settings.prefixes[d.type], d.id), d.body)


@pytest.fixture(scope="module")
def corpus() -> list[Document]:
    return [parse_document(d) for d in sample_documents(160, seed=11, now=NOW)]


@pytest.fixture
def loaded(engine: Engine, corpus: list[Document]) -> Engine:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(engine.pipeline.put, corpus))
    return engine


def expected(corpus: list[Document], q: Query, since: datetime, until: datetime) -> list[str]:
    rows = [
        d
        for d in corpus
        if d.type in q.types
        and since <= d.modified_at <= until
        and (q.customer is None or q.customer in d.customer_codes)
        and (q.status is None or d.status == q.status)
    ]
    rows.sort(key=lambda d: (keys.time_sort_key(d.modified_at, d.id), d.type), reverse=True)
    return [f"{d.type}/{d.id}" for d in rows]


def all_pages(engine: Engine, q: Query, source: str = "auto") -> Iterator[list[dict[str, Any]]]:
    token = None
    while True:
        page = engine.reader.query(q, token, source)
        yield page.items
        token = page.next_page_token
        if token is None:
            return


def test_every_query_combination_matches_brute_force(
    loaded: Engine, corpus: list[Document]
) -> None:
    types_options = [("change",), ("announcement",), ("announcement", "change")]
    customers = [None, "acme", "stark"]
    statuses = [None, "draft", "approved"]
    windows = [None, "30d", "7d"]
    for types, customer, status, since in itertools.product(
        types_options, customers, statuses, windows
    ):
        q = Query(
            types=types,
            customer=customer,
            status=status,
            since=keys.parse_time(since) if since else None,
            limit=7,
        )
        got: list[str] = []
        for items in all_pages(loaded, q):
            assert len(items) <= 7
            got.extend(f"{i['object_type']}/{i['id']}" for i in items)
        lo = q.since or keys.window_start(loaded.settings.cache_ttl_days)
        want = expected(corpus, q, lo, datetime.now(UTC))
        assert got == want, (types, customer, status, since)


def test_s3_path_answers_the_same_as_the_cache(loaded: Engine, corpus: list[Document]) -> None:
    q = Query(customer="acme", since=keys.parse_time("60d"), limit=10)
    via_cache = [i for items in all_pages(loaded, q) for i in items]
    via_s3 = [i for items in all_pages(loaded, q, "s3") for i in items]
    assert via_cache == via_s3 and len(via_cache) > 10


def test_range_beyond_the_window_is_refused_or_answered_completely(
    loaded: Engine, corpus: list[Document]
) -> None:
    with pytest.raises(QueryOutsideWindowError, match="cache window"):
        loaded.reader.query(Query(since=keys.parse_time("120d")))
    q = Query(since=keys.parse_time("125d"), limit=1000)
    page = loaded.reader.query(q, None, "s3")
    assert page.source == "s3"
    assert [f"{i['object_type']}/{i['id']}" for i in page.items] == expected(
        corpus, q, q.since or NOW, datetime.now(UTC)
    )


def test_page_tokens_are_validated(loaded: Engine) -> None:
    page = loaded.reader.query(Query(limit=3))
    assert page.next_page_token
    token = page.next_page_token
    forged = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(InvalidPageTokenError):
        loaded.reader.query(Query(limit=3), forged)
    with pytest.raises(InvalidPageTokenError, match="other filters"):
        loaded.reader.query(Query(limit=3, customer="acme"), token)
    with pytest.raises(InvalidPageTokenError):
        loaded.reader.query(Query(limit=3), "not-a-token")


def test_queries_never_return_expired_tombstoned_or_in_flight(loaded: Engine) -> None:
    cache = loaded.cache
    newest = loaded.reader.query(Query(limit=3)).items
    expired, tombstoned, updating = newest
    # expired: TTL passed but DynamoDB has not deleted it yet (it deletes lazily)
    pk = f"{expired['object_type']}#{expired['id']}"
    loaded.clients.dynamodb.update_item(
        TableName=loaded.settings.table,
        Key={"pk": {"S": pk}},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues=serialize({":past": int(NOW.timestamp()) - 10}),
    )
    loaded.pipeline.delete(tombstoned["object_type"], tombstoned["id"])
    cache.begin(
        updating["object_type"],
        updating["id"],
        tx="t1",
        etag="e" * 32,
        op="put",
        stale_before=NOW - timedelta(hours=1),
        expected_version=None,
    )
    cache.begin(
        "change",
        "CHG-inflight",
        tx="t2",
        etag="f" * 32,
        op="put",
        stale_before=NOW - timedelta(hours=1),
        expected_version=None,
    )
    ids = [i["id"] for items in all_pages(loaded, Query(limit=50)) for i in items]
    assert expired["id"] not in ids and tombstoned["id"] not in ids
    assert updating["id"] in ids  # the previous committed image, not the intent
    assert "CHG-inflight" not in ids
    # get: the expired entry is a miss served from S3; the in-flight one its old image
    assert loaded.reader.get(expired["object_type"], expired["id"]).cache == "miss"
    assert loaded.reader.get(updating["object_type"], updating["id"]).cache == "hit"
    with pytest.raises(NotFoundError):
        loaded.reader.get("change", "CHG-inflight")


def test_miss_reads_s3_and_backfills_then_hits(
    engine: Engine, corpus: list[Document], counter: Any
) -> None:
    d = corpus[0]
    put_direct(engine, d)
    counter.reset()
    first = engine.reader.get(d.type, d.id)
    assert (first.cache, first.source) == ("miss", "s3")
    # no entry at all: the fill is one put-if-absent
    assert counter.counts == {
        "dynamodb.GetItem": 1,
        "s3.GetObject": 1,
        "dynamodb.TransactWriteItems": 1,  # the image and its customer-index entries
    }
    assert first.document == json.loads(d.body)
    second = engine.reader.get(d.type, d.id)
    assert second.cache == "hit" and second.document == first.document
    with pytest.raises(NotFoundError):
        engine.reader.get("change", "CHG-none")


def test_backfill_never_overwrites_a_newer_entry(engine: Engine, corpus: list[Document]) -> None:
    d = corpus[0]
    put_direct(engine, d)
    stale = engine.objects.get(keys.s3_key(engine.settings.prefixes[d.type], d.id))
    newer = parse_document(json.loads(d.body) | {"title": "newer"})
    import time

    time.sleep(1.1)  # S3 LastModified has one-second precision
    engine.pipeline.put(newer)
    assert engine.reader.fill(d, stale, source="backfill") is False
    # a get that found nothing, then the writer committed before its fill: still refused
    assert engine.reader.fill(d, stale, source="backfill", absent=True) is False
    assert engine.reader.get(d.type, d.id).document["title"] == "newer"


def test_backfill_racing_writers_keeps_the_newest(engine: Engine, corpus: list[Document]) -> None:
    docs = corpus[:30]
    for d in docs:
        put_direct(engine, d)
    import time

    time.sleep(1.1)
    updated = [parse_document(json.loads(d.body) | {"title": "v2"}) for d in docs]
    writer = threading.Thread(target=lambda: [engine.pipeline.put(u) for u in updated])
    writer.start()
    backfill(engine)
    writer.join()
    for d in docs:
        assert engine.reader.get(d.type, d.id).document["title"] == "v2"


def test_backfill_filters_and_counts(engine: Engine, corpus: list[Document]) -> None:
    for d in corpus[:20]:
        put_direct(engine, d)
    engine.objects.put("changes/garbage.json", b"not json")
    engine.objects.put("changes/bad id!.json", b"{}")
    counts = backfill(engine, customer="acme")
    with_acme = sum("acme" in d.customer_codes for d in corpus[:20])
    assert counts.filled == with_acme
    assert counts.filtered == 20 - with_acme
    assert counts.invalid == 2
    assert counts.failed == 0
    again = backfill(engine, customer="acme")
    assert again.filled == 0 and again.already_current == with_acme


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_dynamodb_unavailable_serves_gets_and_queries_from_s3(
    loaded: Engine, corpus: list[Document], monkeypatch: pytest.MonkeyPatch, counter: Any
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{_closed_port()}")
    s: Settings = make_settings(
        str(loaded.settings.endpoint_url),
        aws={"max_attempts": 1, "connect_timeout_s": 0.2},
        breaker={"fail_max": 2, "reset_s": 60},
    )
    counter.reset()
    down = Engine.build(s, counter)
    d = next(d for d in corpus if keys.in_window(d.modified_at, 90))
    for _ in range(4):
        result = down.reader.get(d.type, d.id)
        assert (result.source, result.cache) == ("s3", "bypass")
        assert result.document == json.loads(d.body)
    # the breaker opened after 2 failures: later reads did not even try DynamoDB
    assert counter.counts["dynamodb.GetItem"] == 2
    page = down.reader.query(Query(customer="acme", limit=5))
    assert page.source == "s3" and len(page.items) == 5
    assert page.items == loaded.reader.query(Query(customer="acme", limit=5)).items

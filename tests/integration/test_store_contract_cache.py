"""One contract, two DynamoDB backends under the real `CacheStore`: moto (over HTTP) and the
in-memory client (`engine/store/memory/cache.py`).

Every case runs against both, so a logic test on `MemoryDynamoDB` relies only on behaviour
the cache store has on DynamoDB: conditional writes that refuse with the item, the
customer index written in one transaction with its image, GSIs as sorted, sparse views.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine import keys
from engine.app import Engine
from engine.documents import Document, parse_document
from engine.readmetrics.item import delta_of_image, flush_update, metrics_pk, zero
from engine.store.base import ConditionFailed
from engine.store.cache import CacheStore
from engine.store.item import CacheItem, IndexEntry, live_attributes
from engine.store.objects import ObjectInfo
from tests.memory_stores import memory_cache, memory_settings

NOW = datetime.now(UTC)
# every document of a case in one month (the current one), whatever the date
MONTH_START = NOW.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
MONTH = keys.month_bucket(MONTH_START)


@pytest.fixture(params=["moto", "memory"])
def cache(request: pytest.FixtureRequest) -> CacheStore:
    if request.param == "memory":
        return memory_cache(memory_settings())
    store: CacheStore = request.getfixturevalue("engine").cache
    return store


def doc(doc_id: str = "CHG-1", minute: int = 0, **extra: Any) -> Document:
    body = {
        "id": doc_id,
        "object_type": "change",
        "title": "Kernel patching",
        "customer_codes": ["acme", "globex"],
        "status": "approved",
        "created_at": keys.iso(MONTH_START),
        "modified_at": keys.iso(MONTH_START + timedelta(minutes=minute)),
    }
    body.update(extra)
    return parse_document(body)


def attrs_of(d: Document, last_modified: datetime = NOW) -> dict[str, Any]:
    etag = hashlib.md5(d.body).hexdigest()
    info = ObjectInfo(f"changes/{d.id}.json", etag, len(d.body), last_modified)
    return live_attributes(d, info, prefix="changes/", source="write", ttl_days=90)


def begin(cache: CacheStore, d: Document, **kw: Any) -> tuple[str, dict[str, Any]]:
    tx = uuid.uuid4().hex
    options: dict[str, Any] = {"stale_before": NOW - timedelta(minutes=5), "expected_version": None}
    options.update(kw)
    intent = cache.begin("change", d.id, tx=tx, etag=attrs_of(d)["etag"], op="put", **options)
    return tx, intent


def write(cache: CacheStore, d: Document) -> int:
    """The write pipeline's steps 1 and 3; returns the committed version."""
    tx, intent = begin(cache, d)
    version = int(intent["p_version"])
    cache.commit_live("change", d.id, tx, attrs_of(d), version, list(intent["p_cust"]))
    return version


def customer_entries(cache: CacheStore, customer: str) -> list[str]:
    partition = keys.customer_partition(customer, "change", MONTH)
    items, _ = cache.query_page(keys.CUSTOMER_INDEX, partition, "0", "9~", limit=100, now=NOW)
    return [str(i.doc) for i in items if isinstance(i, IndexEntry)]


def time_page(
    cache: CacheStore, limit: int, start: dict[str, Any] | None = None, status: str | None = None
) -> tuple[list[str], dict[str, Any] | None]:
    partition = keys.time_partition("change", MONTH, "x", 1)
    items, last = cache.query_page(
        keys.TIME_INDEX, partition, "0", "9~", limit=limit, now=NOW, status=status,
        start_key=start,
    )  # fmt: skip
    return [i.pk for i in items if isinstance(i, CacheItem)], last


# -- begin, commit, rollback --------------------------------------------------------------


def test_begin_then_commit_makes_the_image_and_drops_the_intent(cache: CacheStore) -> None:
    d = doc()
    tx, intent = begin(cache, d)
    intent = {k: v for k, v in intent.items() if k != "pk"}  # moto adds the key, AWS does not
    assert intent == {
        "p_tx": tx,
        "p_etag": attrs_of(d)["etag"],
        "p_op": "put",
        "p_at": intent["p_at"],
        "p_version": 1,
        "p_cust": [],
    }
    raw = cache.get_item("change", d.id)
    assert raw is not None and raw["p_tx"] == tx and "state" not in raw
    assert time_page(cache, 10)[0] == []  # an intent alone is in no index
    cache.commit_live("change", d.id, tx, attrs_of(d), 1, [])
    entry = cache.get("change", d.id)
    assert entry is not None and entry.live and entry.version == 1 and entry.pending_tx is None
    assert time_page(cache, 10)[0] == ["change#CHG-1"]


def test_begin_refuses_the_same_content_and_a_fresh_rival_with_the_item(
    cache: CacheStore,
) -> None:
    d = doc()
    write(cache, d)
    with pytest.raises(ConditionFailed) as same:
        begin(cache, d)
    assert same.value.item is not None and same.value.item["etag"] == attrs_of(d)["etag"]
    newer = doc(title="v2")
    tx, _ = begin(cache, newer)
    with pytest.raises(ConditionFailed) as rival:
        begin(cache, doc(title="v3"))
    assert rival.value.item is not None and rival.value.item["p_tx"] == tx
    # a stale intent no longer blocks (its writer is presumed dead)
    took, _ = begin(cache, doc(title="v3"), stale_before=datetime.now(UTC) + timedelta(minutes=5))
    raw = cache.get_item("change", d.id)
    assert raw is not None and raw["p_tx"] == took and raw["p_version"] == 2


def test_expected_version(cache: CacheStore) -> None:
    d = doc()
    with pytest.raises(ConditionFailed) as absent:
        begin(cache, d, expected_version=1)
    assert absent.value.item is None
    begin(cache, d, expected_version=0, stale_before=datetime.now(UTC) + timedelta(minutes=5))


def test_rollback_restores_the_committed_image_or_removes_a_first_write(
    cache: CacheStore,
) -> None:
    first = doc("CHG-1")
    tx, _ = begin(cache, first)
    cache.rollback("change", first.id, tx)
    assert cache.get_item("change", first.id) is None
    write(cache, first)
    tx, _ = begin(cache, doc("CHG-1", title="v2"))
    with pytest.raises(ConditionFailed):  # not ours: refused, nothing changes
        cache.rollback("change", first.id, "someone-else")
    assert cache.get_item("change", first.id)["p_tx"] == tx  # type: ignore[index]
    cache.rollback("change", first.id, tx)
    raw = cache.get_item("change", first.id)
    assert raw is not None and raw["version"] == 1 and raw["title"] == "Kernel patching"
    assert not [k for k in raw if k.startswith("p_")]


def test_a_commit_of_another_tx_is_refused_with_the_item(cache: CacheStore) -> None:
    d = doc()
    tx, _ = begin(cache, d)
    for customers in ([], ["acme"]):  # a plain write, then a transaction with index entries
        with pytest.raises(ConditionFailed) as refused:
            cache.commit_live("change", d.id, "not-" + tx, attrs_of(d), 1, customers)
        assert refused.value.item is not None and refused.value.item["p_tx"] == tx
    assert customer_entries(cache, "acme") == []  # all or nothing


# -- the customer index ---------------------------------------------------------------------


def test_the_customer_index_follows_each_committed_image(cache: CacheStore) -> None:
    write(cache, doc("CHG-1"))
    write(cache, doc("CHG-2", minute=1, customer_codes=["acme"]))
    assert customer_entries(cache, "acme") == ["change#CHG-2", "change#CHG-1"]  # newest first
    assert customer_entries(cache, "globex") == ["change#CHG-1"]
    write(cache, doc("CHG-1", customer_codes=["initech"], title="moved"))
    assert customer_entries(cache, "acme") == ["change#CHG-2"]
    assert customer_entries(cache, "globex") == []
    assert customer_entries(cache, "initech") == ["change#CHG-1"]
    tx, intent = begin(cache, doc("CHG-1", title="gone"))
    cache.commit_deleted(
        "change", "CHG-1", tx, NOW, 90, key="changes/CHG-1.json", prev_customers=intent["p_cust"]
    )
    assert customer_entries(cache, "initech") == []
    entry = cache.get("change", "CHG-1")
    assert entry is not None and not entry.live and entry.version == 3
    assert time_page(cache, 10)[0] == ["change#CHG-2"]  # a tombstone is in no index


def test_sync_only_moves_forward_and_checks_the_customers_it_believes(cache: CacheStore) -> None:
    d = doc()
    stale = NOW - timedelta(minutes=5)
    cache.sync("change", d.id, attrs_of(d), stale_before=stale, prev_customers=[])
    older = attrs_of(doc(title="older"), last_modified=NOW - timedelta(hours=1))
    with pytest.raises(ConditionFailed) as backwards:
        cache.sync("change", d.id, older, stale_before=stale, prev_customers=["acme", "globex"])
    assert backwards.value.item is not None and backwards.value.item["title"] == d.title
    newer = attrs_of(doc(title="newer", customer_codes=["acme"]), NOW + timedelta(seconds=1))
    with pytest.raises(ConditionFailed):  # the entry lists two customers, not none
        cache.sync("change", d.id, newer, stale_before=stale, prev_customers=[])
    cache.sync("change", d.id, newer, stale_before=stale, prev_customers=["acme", "globex"])
    assert customer_entries(cache, "globex") == [] and customer_entries(cache, "acme")
    entry = cache.get("change", d.id)
    assert entry is not None and entry.version == 2 and entry.title == "newer"


def test_replace_only_from_the_version_seen(cache: CacheStore) -> None:
    d = doc()
    cache.replace("change", d.id, attrs_of(d), version_seen=None, prev_customers=[])
    with pytest.raises(ConditionFailed):
        cache.replace("change", d.id, attrs_of(d), version_seen=None, prev_customers=[])
    with pytest.raises(ConditionFailed):
        cache.replace("change", d.id, attrs_of(d), version_seen=7, prev_customers=[])
    cache.replace("change", d.id, attrs_of(d), version_seen=1, prev_customers=["acme", "globex"])
    assert cache.get("change", d.id).version == 2  # type: ignore[union-attr]


# -- queries -------------------------------------------------------------------------------------


def test_time_index_pages_newest_first_and_counts(cache: CacheStore) -> None:
    for n in range(5):
        status = "draft" if n % 2 else "approved"
        write(cache, doc(f"CHG-{n}", minute=n, status=status))
    assert all_pages(cache, 2) == [f"change#CHG-{n}" for n in (4, 3, 2, 1, 0)]
    assert time_page(cache, 2)[0] == ["change#CHG-4", "change#CHG-3"]
    partition = keys.time_partition("change", MONTH, "x", 1)
    assert cache.count(keys.TIME_INDEX, partition, "0", "9~", now=NOW) == 5
    draft = keys.status_partition("change", "draft", MONTH, "x", 1)
    assert cache.count(keys.STATUS_INDEX, draft, "0", "9~", now=NOW) == 2
    drafts = cache.count(keys.TIME_INDEX, partition, "0", "9~", now=NOW, status="draft")
    assert drafts == 2
    approved = time_page(cache, 10, status="approved")[0]
    assert approved == ["change#CHG-4", "change#CHG-2", "change#CHG-0"]
    low = keys.time_sort_key(MONTH_START + timedelta(minutes=1), "")
    high = keys.time_sort_key(MONTH_START + timedelta(minutes=3), "~")
    assert cache.count(keys.TIME_INDEX, partition, low, high, now=NOW) == 3
    assert cache.holds_any(keys.TIME_INDEX, partition)
    assert not cache.holds_any(keys.TIME_INDEX, partition + "x")
    later = NOW + timedelta(days=400)  # every entry has expired by then (TTL is lazy)
    assert cache.count(keys.TIME_INDEX, partition, "0", "9~", now=later) == 0


def test_key_index_is_in_s3_key_order_and_projected(cache: CacheStore) -> None:
    ids = ["Cb", "C_a", "CZ", "C-1", "C.x", "C9", "Cab"]
    for doc_id in ids:
        write(cache, doc(doc_id, customer_codes=[]))
    listed = [i for i in cache.key_index("changes/C") if isinstance(i, CacheItem)]
    assert [i.s3_key for i in listed] == sorted((f"changes/{i}.json" for i in ids), key=str.encode)
    assert all(i.body is None and i.title is None and i.etag for i in listed)


def test_batch_get_and_scan(cache: CacheStore) -> None:
    write(cache, doc("CHG-1"))
    write(cache, doc("CHG-2", customer_codes=[]))
    found = cache.batch_get(["change#CHG-1", "change#CHG-2", "change#CHG-9", "change#CHG-1"])
    assert sorted(found) == ["change#CHG-1", "change#CHG-2"]
    pks = {str(i["pk"]) for i in cache.scan_all()}
    assert {"change#CHG-1", "change#CHG-2"} <= pks and len(pks) == 4  # + 2 index entries
    cache.drop("change", "CHG-2")
    assert cache.get("change", "CHG-2") is None


def test_read_metrics_add_up_and_a_retried_flush_is_refused(cache: CacheStore) -> None:
    """ADD of numbers and string sets, `if_not_exists`, `contains` in the condition."""
    window = 1_000_000
    delta = replace(zero(), hits=3, misses=1, latency_sum_ms=2.5)
    assert cache.add_read_metrics(flush_update("f1", window, 60, 3600, delta))
    assert cache.add_read_metrics(flush_update("f2", window, 60, 3600, delta))
    assert not cache.add_read_metrics(flush_update("f1", window, 60, 3600, delta))
    image = next(i for i in cache.scan_all() if i["pk"] == metrics_pk(window))
    assert delta_of_image(image) == replace(zero(), hits=6, misses=2, latency_sum_ms=5.0)
    assert image["flush_ids"] == {"f1", "f2"} and image["flushes"] == 2


STAMPS = {"p_at", "synced_at"}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_moto_and_memory_agree_on_random_write_sequences(engine: Engine, seed: int) -> None:
    """Differential: the same random writes on both backends give the same outcomes and the
    same table after each step (`p_at` and `synced_at` aside: the stores' clocks stamp them)."""
    rng = random.Random(seed)
    backends = [engine.cache, memory_cache(memory_settings())]
    txs: dict[str, str] = {}
    for n in range(40):
        doc_id = f"CHG-{rng.randrange(3)}"
        d = doc(
            doc_id, title=f"v{n}", customer_codes=rng.sample(["a", "b", "c"], rng.randint(0, 2))
        )
        attrs = attrs_of(d, NOW + timedelta(seconds=n))
        action = rng.choice(["begin", "commit", "rollback", "delete", "sync"])
        tx = txs.get(doc_id, "none") if action != "begin" else f"tx{n}"
        belief = rng.sample(["a", "b", "c"], rng.randint(0, 2))
        outcomes = []
        for cache in backends:
            try:
                if action == "begin":
                    stale = NOW - timedelta(minutes=5)
                    cache.begin("change", doc_id, tx=tx, etag=attrs["etag"], op="put",
                                stale_before=stale, expected_version=None)  # fmt: skip
                elif action == "commit":
                    raw = cache.get_item("change", doc_id) or {}
                    version = int(raw.get("p_version", 1))
                    cache.commit_live("change", doc_id, tx, attrs, version, raw.get("p_cust", []))
                elif action == "rollback":
                    cache.rollback("change", doc_id, tx)
                elif action == "delete":
                    raw = cache.get_item("change", doc_id) or {}
                    cache.commit_deleted("change", doc_id, tx, NOW, 90, key=attrs["s3_key"],
                                         prev_customers=raw.get("p_cust", []))  # fmt: skip
                else:
                    cache.sync("change", doc_id, attrs, stale_before=NOW - timedelta(minutes=5),
                               prev_customers=belief)  # fmt: skip
                outcomes.append("ok")
            except ConditionFailed as refused:
                item = {k: v for k, v in (refused.item or {}).items() if k not in STAMPS}
                outcomes.append(f"refused {sorted(item.items())}")
        if action == "begin" and outcomes[0] == "ok":
            txs[doc_id] = tx
        assert outcomes[0] == outcomes[1], (n, action)
        tables = [
            sorted(sorted((k, v) for k, v in i.items() if k not in STAMPS) for i in c.scan_all())
            for c in backends
        ]
        assert tables[0] == tables[1], (n, action)
    for customer in "abc":
        assert customer_entries(backends[0], customer) == customer_entries(backends[1], customer)
    for limit in (1, 2, 3):
        assert all_pages(backends[0], limit) == all_pages(backends[1], limit)


def all_pages(cache: CacheStore, limit: int) -> list[str]:
    """Every entry of the time index, page by page (DynamoDB may end on an empty page)."""
    seen: list[str] = []
    start: dict[str, Any] | None = None
    while True:
        page, start = time_page(cache, limit, start)
        seen += page
        if not start:
            return seen


def test_a_compare_and_swap_on_an_entry_seen_absent_writes_only_while_absent(
    cache: CacheStore,
) -> None:
    """sync's last resort (engine/sync.py) may have seen no entry at all: its swap is then
    "still absent", so it writes once and a second writer who also saw nothing is refused."""
    d = doc("CHG-cas")
    absent = CacheItem(type="change", id=d.id)
    stale = NOW - timedelta(minutes=5)
    cache.sync("change", d.id, attrs_of(d), stale_before=stale, prev_customers=[], expect=absent)
    entry = cache.get("change", d.id)
    assert entry is not None and entry.live and entry.title == d.title
    other = attrs_of(doc("CHG-cas", title="other"))
    with pytest.raises(ConditionFailed) as refused:
        cache.sync("change", d.id, other, stale_before=stale, prev_customers=[], expect=absent)
    assert refused.value.item is not None and refused.value.item["title"] == d.title

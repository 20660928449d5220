"""The customer index: one entry per (document, customer), written in the commit's transaction.

Against the moto server: queries by customer (and status, type, range) agree with a brute-force
answer through updates that add and remove customers and through deletes; a fault at any step
of a write leaves no orphan entry a query could see; the reconciler finds and repairs missing,
extra and stale entries; customer queries read only the customer's entries.
"""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from engine import keys
from engine.app import Engine
from engine.documents import Document, parse_document
from engine.events.apply import EventApplier
from engine.exceptions import CacheUnavailableError, ObjectStoreError, WriteConflictError
from engine.reader import Query
from engine.settings import Settings
from engine.store.item import serialize
from reconciler.run import Reconciler
from tests.conftest import make_settings
from tests.integration.faults import Faults, SimulatedCrash

NOW = datetime.now(UTC).replace(microsecond=0)
CUSTOMERS = ["acme", "globex", "hooli", "stark"]
STATUSES = {"change": ["draft", "approved"], "announcement": ["published", "archived"]}


def make(
    type_name: str, n: int, customers: list[str], status: str, age: timedelta, title: str = "t"
) -> Document:
    modified = NOW - age
    return parse_document(
        {
            "id": f"{'CHG' if type_name == 'change' else 'ANN'}-{n:03d}",
            "object_type": type_name,
            "title": title,
            "customer_codes": customers,
            "status": status,
            "created_at": keys.iso(modified - timedelta(days=1)),
            "modified_at": keys.iso(modified),
        }
    )


def index_items(engine: Engine) -> dict[str, dict[str, Any]]:
    return {
        str(i["pk"]): i for i in engine.cache.scan_all() if str(i["pk"]).startswith(keys.INDEX_PK)
    }


def assert_index_exact(engine: Engine) -> None:
    """Every committed live image has exactly its customers' entries, with its ETag."""
    items = list(engine.cache.scan_all())
    wanted: dict[str, str] = {}
    for item in items:
        pk = str(item["pk"])
        if pk.startswith(keys.INDEX_PK) or item.get("state") != "live":
            continue
        type_name, _, doc_id = pk.partition("#")
        for customer in item["customers"]:
            wanted[keys.index_pk(type_name, doc_id, customer)] = str(item["etag"])
    found = {str(i["pk"]): str(i["etag"]) for i in items if str(i["pk"]).startswith(keys.INDEX_PK)}
    assert found == wanted


def all_ids(engine: Engine, q: Query) -> list[str]:
    got: list[str] = []
    token = None
    while True:
        page = engine.reader.query(q, token)
        assert len(page.items) <= q.limit
        got.extend(f"{i['object_type']}/{i['id']}" for i in page.items)
        token = page.next_page_token
        if not token:
            return got


def brute(docs: dict[str, Document], q: Query, since: datetime, until: datetime) -> list[str]:
    rows = [
        d
        for d in docs.values()
        if d.type in q.types
        and since <= d.modified_at <= until
        and (q.customer is None or q.customer in d.customer_codes)
        and (q.status is None or d.status == q.status)
    ]
    rows.sort(key=lambda d: (keys.time_sort_key(d.modified_at, d.id), d.type), reverse=True)
    return [f"{d.type}/{d.id}" for d in rows]


def test_every_combination_agrees_with_brute_force_through_updates_and_deletes(
    engine: Engine,
) -> None:
    rng = random.Random(20261203)
    live: dict[str, Document] = {}
    for n in range(18):
        type_name = rng.choice(["change", "announcement"])
        d = make(
            type_name,
            n,
            rng.sample(CUSTOMERS, rng.randint(1, 3)),
            rng.choice(STATUSES[type_name]),
            timedelta(days=rng.randrange(80), seconds=rng.randrange(86400)),
        )
        engine.pipeline.put(d)
        live[f"{d.type}/{d.id}"] = d
    # Updates that add, remove and replace customers (and move some in time and status).
    for name in rng.sample(sorted(live), 8):
        old = live[name]
        customers = rng.sample(CUSTOMERS, rng.randint(1, 3))
        age = NOW - old.modified_at if rng.random() < 0.5 else timedelta(days=rng.randrange(80))
        d = make(old.type, int(old.id[4:]), customers, rng.choice(STATUSES[old.type]), age, "v2")
        engine.pipeline.put(d)
        live[name] = d
    for name in rng.sample(sorted(live), 3):
        engine.pipeline.delete(live[name].type, live[name].id)
        del live[name]
    assert_index_exact(engine)
    types_options = [("change",), ("announcement",), ("announcement", "change")]
    ranges = [(None, None), (timedelta(days=30), None), (timedelta(days=60), timedelta(days=20))]
    for types, customer, status, (since, until) in itertools.product(
        types_options, CUSTOMERS, [None, "draft", "published"], ranges
    ):
        q = Query(
            types=types,
            customer=customer,
            status=status,
            since=NOW - since if since else None,
            until=NOW - until if until else None,
            limit=3,
        )
        lo = q.since or keys.window_start(engine.settings.cache_ttl_days)
        want = brute(live, q, lo, q.until or datetime.now(UTC))
        assert all_ids(engine, q) == want, (types, customer, status, since, until)
        total, source = engine.reader.count(q)
        assert (total, source) == (len(want), "cache"), (types, customer, status, since, until)


def test_a_customer_query_reads_only_that_customers_entries(engine: Engine, counter: Any) -> None:
    """Items read per item returned is 1 (ScannedCount = Count on every Query), plus one
    BatchGetItem per page: the other customers' documents are never read."""
    for n in range(30):
        customers = ["acme", "globex"] if n % 10 == 0 else ["hooli"]
        engine.pipeline.put(make("change", n, customers, "draft", timedelta(hours=n)))
    scanned: list[tuple[int, int]] = []

    def record(http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name == "Query":
            scanned.append((parsed["ScannedCount"], parsed["Count"]))

    engine.clients.dynamodb.meta.events.register("after-call.dynamodb.Query", record)
    counter.reset()
    page = engine.reader.query(Query(types=("change",), customer="acme", limit=10))
    assert [i["id"] for i in page.items] == ["CHG-000", "CHG-010", "CHG-020"]
    assert sum(s for s, _ in scanned) == sum(c for _, c in scanned) == 3
    assert counter.counts["dynamodb.BatchGetItem"] == 1
    months = list(keys.months_desc(keys.window_start(engine.settings.cache_ttl_days), NOW))
    assert counter.counts["dynamodb.Query"] == len(scanned) == len(months)  # one per month


def test_customers_are_capped_so_a_commit_fits_one_transaction() -> None:
    from engine.documents import MAX_CUSTOMERS
    from engine.exceptions import InvalidDocumentError

    codes = [f"c{n}" for n in range(MAX_CUSTOMERS + 1)]
    with pytest.raises(InvalidDocumentError, match="customer_codes"):
        make("change", 1, codes, "draft", timedelta(hours=1))
    assert make("change", 1, codes[:MAX_CUSTOMERS], "draft", timedelta(hours=1))


def test_an_update_to_fifty_customers_from_fifty_others_commits(engine: Engine) -> None:
    """The worst case: 1 image + 49 puts + 49 deletes = 99 actions in one transaction."""
    first = [f"a{n}" for n in range(49)]
    second = [f"b{n}" for n in range(49)]
    engine.pipeline.put(make("change", 1, first, "draft", timedelta(hours=2)))
    engine.pipeline.put(make("change", 1, second, "draft", timedelta(hours=1), "v2"))
    assert_index_exact(engine)
    assert len(index_items(engine)) == 49


# -- faults ---------------------------------------------------------------------------------


@pytest.fixture
def faulty(settings: Settings) -> tuple[Engine, Faults]:
    s = make_settings(str(settings.endpoint_url), breaker={"fail_max": 1000}, inflight_grace_s=0.3)
    engine = Engine.build(s)
    faults = Faults()
    faults.attach(engine.clients.s3)
    faults.attach(engine.clients.dynamodb)
    return engine, faults


STEPS = [("dynamodb", "UpdateItem"), ("s3", "PutObject"), ("dynamodb", "TransactWriteItems")]


def visible(engine: Engine, customer: str) -> set[str]:
    return {i["id"] for i in engine.reader.query(Query(types=("change",), customer=customer)).items}


def committed_customers(engine: Engine, doc_id: str) -> set[str]:
    item = engine.cache.get_item("change", doc_id) or {}
    return set(item.get("customers") or []) if item.get("state") == "live" else set()


@pytest.mark.parametrize("step", STEPS, ids=lambda s: s[1])
@pytest.mark.parametrize("kind", ["fail", "crash"])
def test_a_fault_at_any_step_leaves_no_orphan_index_entry(
    faulty: tuple[Engine, Faults], step: tuple[str, str], kind: str
) -> None:
    """An update that drops acme and adds stark fails (or dies) at one step; every customer's
    query then shows the document exactly when the committed image lists that customer, and
    a retry converges to the new customers."""
    engine, faults = faulty
    before = make("change", 1, ["acme", "globex"], "draft", timedelta(hours=2))
    after = make("change", 1, ["globex", "stark"], "approved", timedelta(hours=1), "v2")
    engine.pipeline.put(before)
    if kind == "fail":
        faults.fail(*step)
    else:
        faults.crash_after(*step)
    with pytest.raises((SimulatedCrash, ObjectStoreError, CacheUnavailableError)):
        engine.pipeline.put(after)
    faults.clear()
    assert_index_exact(engine)
    listed = committed_customers(engine, before.id)
    for customer in ("acme", "globex", "stark"):
        assert (before.id in visible(engine, customer)) == (customer in listed), customer
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while True:  # a retry (after the grace period, if the intent was left behind)
        try:
            engine.pipeline.put(after)
            break
        except WriteConflictError:
            assert datetime.now(UTC) < deadline
    assert_index_exact(engine)
    assert {c: before.id in visible(engine, c) for c in ("acme", "globex", "stark")} == {
        "acme": False,
        "globex": True,
        "stark": True,
    }


def test_a_cancelled_transaction_changes_nothing_in_the_embedded_moto(engine: Engine) -> None:
    """The embedded server backs up only the items a transaction names: a cancelled one
    must still leave every item, and the stream, as they were."""
    engine.pipeline.put(make("change", 1, ["acme"], "draft", timedelta(hours=1)))
    ddb = engine.clients.dynamodb
    stream_arn = ddb.describe_table(TableName=engine.settings.table)["Table"]["LatestStreamArn"]

    def stream_length() -> int:
        streams = engine.clients.client("dynamodbstreams")
        shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]
        it = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        return len(streams.get_records(ShardIterator=it)["Records"])

    items_before = sorted(engine.cache.scan_all(), key=lambda i: str(i["pk"]))
    records_before = stream_length()
    table = engine.settings.table
    with pytest.raises(ClientError, match="TransactionCanceled"):
        ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": serialize({"pk": "x#1", "a": 1})}},
                {"Delete": {"TableName": table, "Key": {"pk": {"S": "change#CHG-001"}}}},
                {
                    "Update": {
                        "TableName": table,
                        "Key": {"pk": {"S": keys.index_pk("change", "CHG-001", "acme")}},
                        "UpdateExpression": "SET etag = :e",
                        "ConditionExpression": "etag = :nope",
                        "ExpressionAttributeValues": serialize({":e": "z", ":nope": "n"}),
                    }
                },
            ]
        )
    assert sorted(engine.cache.scan_all(), key=lambda i: str(i["pk"])) == items_before
    assert stream_length() == records_before


# -- reconciler -------------------------------------------------------------------------------


def test_the_reconciler_finds_and_repairs_every_kind_of_index_drift(engine: Engine) -> None:
    docs = [
        make("change", n, ["acme", "globex"], "draft", timedelta(hours=n + 1)) for n in range(5)
    ]
    for d in docs:
        engine.pipeline.put(d)
    entries = index_items(engine)
    engine.pipeline.delete("change", docs[4].id)
    assert keys.index_pk("change", "CHG-004", "acme") not in index_items(engine)
    ddb, table = engine.clients.dynamodb, engine.settings.table
    # missing: CHG-000 loses its acme entry
    ddb.delete_item(TableName=table, Key={"pk": {"S": keys.index_pk("change", "CHG-000", "acme")}})
    # extra: CHG-001 gains an entry for a customer it does not list
    extra = dict(entries[keys.index_pk("change", "CHG-001", "acme")])
    extra.update(
        pk=keys.index_pk("change", "CHG-001", "stark"),
        cpk=keys.customer_partition("stark", "change", extra["cpk"].rsplit("#", 1)[-1]),
        customer="stark",
        s3_key="changes/CHG-001.json#stark",
    )
    ddb.put_item(TableName=table, Item=serialize(extra))
    # stale: CHG-002's globex entry carries another ETag
    stale = dict(entries[keys.index_pk("change", "CHG-002", "globex")], etag="0" * 32)
    ddb.put_item(TableName=table, Item=serialize(stale))
    # extra, for a deleted document: CHG-004's entry is back
    gone = entries[keys.index_pk("change", "CHG-004", "acme")]
    ddb.put_item(TableName=table, Item=serialize(gone))

    assert "CHG-001" not in visible(engine, "stark")  # verified against the document: an
    # extra entry is never served
    assert "CHG-002" not in visible(engine, "globex")  # nor a stale one
    assert "CHG-004" not in visible(engine, "acme")

    report = Reconciler(engine).run("report")
    by_key = {i["key"]: i for i in report.items}
    assert by_key["changes/CHG-000.json"]["index"] == {"missing": ["acme"]}
    assert by_key["changes/CHG-001.json"]["index"] == {"extra": ["stark"]}
    assert by_key["changes/CHG-002.json"]["index"] == {"stale": ["globex"]}
    assert by_key["changes/CHG-004.json"]["index"] == {"extra": ["acme"]}
    assert by_key["changes/CHG-004.json"]["class"] == "orphaned"
    assert report.counts["stale"] == 3 and report.counts["orphaned"] == 1
    assert "changes/CHG-003.json" not in by_key

    repaired = Reconciler(engine).run("repair")
    assert repaired.repaired["stale"] == 3 and repaired.repaired["orphaned"] == 1
    assert_index_exact(engine)
    assert Reconciler(engine).run("report").drift == 0
    assert visible(engine, "acme") == {"CHG-000", "CHG-001", "CHG-002", "CHG-003"}
    assert visible(engine, "stark") == set()


def test_events_and_backfill_keep_the_index_exact(engine: Engine) -> None:
    """A document written straight to S3 (no pipeline) reaches the index through a read's
    backfill; a later direct update that drops a customer, through the event listener's
    rules (the same conditional writes)."""
    from engine.events.parse import ObjectEvent

    d = make("change", 7, ["acme", "hooli"], "draft", timedelta(hours=3))
    engine.objects.put("changes/CHG-007.json", d.body)
    assert engine.reader.get("change", d.id).cache == "miss"
    assert_index_exact(engine)
    assert "CHG-007" in visible(engine, "hooli")
    updated = make("change", 7, ["hooli"], "approved", timedelta(hours=1), "v2")
    info = engine.objects.put("changes/CHG-007.json", updated.body)
    event = ObjectEvent(
        bucket=engine.settings.bucket,
        key="changes/CHG-007.json",
        name="ObjectCreated:Put",
        kind="created",
        etag=info.etag,
        sequencer=None,
        event_time=datetime.now(UTC),
        size=info.size,
        version_id=None,
    )
    assert EventApplier.for_engine(engine).apply(event) == "applied"
    assert_index_exact(engine)
    assert "CHG-007" not in visible(engine, "acme")
    assert "CHG-007" in visible(engine, "hooli")


def test_init_adds_the_customer_index_to_a_table_created_without_it(engine: Engine) -> None:
    from engine.infra import Infrastructure

    ddb, table = engine.clients.dynamodb, engine.settings.table
    ddb.update_table(
        TableName=table,
        GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": keys.CUSTOMER_INDEX}}],
    )
    report = Infrastructure(engine.settings, engine.clients).init().as_dict()["resources"]
    assert {"kind": "table-index", "name": keys.CUSTOMER_INDEX} in [
        {"kind": r["kind"], "name": r["name"]} for r in report if r["status"] == "created"
    ]
    indexes = ddb.describe_table(TableName=table)["Table"]["GlobalSecondaryIndexes"]
    assert keys.CUSTOMER_INDEX in {g["IndexName"] for g in indexes}


def test_an_invalid_object_over_a_cached_document_drops_its_index_entries(engine: Engine) -> None:
    """The listener tombstones a cached document whose S3 object became invalid, without
    having read the customers it must drop: the write learns them from its refusal."""
    from engine.events.parse import ObjectEvent

    d = make("change", 8, ["acme", "stark"], "draft", timedelta(hours=3))
    engine.pipeline.put(d)
    engine.clients.dynamodb.update_item(  # written a few seconds before the bad object
        TableName=engine.settings.table,
        Key={"pk": {"S": "change#CHG-008"}},
        UpdateExpression="SET s3_last_modified = s3_last_modified - :five",
        ExpressionAttributeValues={":five": {"N": "5000"}},
    )
    info = engine.objects.put("changes/CHG-008.json", b'{"id": "CHG-008"}')
    event = ObjectEvent(
        bucket=engine.settings.bucket,
        key="changes/CHG-008.json",
        name="ObjectCreated:Put",
        kind="created",
        etag=info.etag,
        sequencer=None,
        event_time=datetime.now(UTC),
        size=info.size,
        version_id=None,
    )
    assert EventApplier.for_engine(engine).apply(event) == "invalid"
    assert (engine.cache.get_item("change", "CHG-008") or {}).get("state") == "deleted"
    assert_index_exact(engine)
    assert index_items(engine) == {}

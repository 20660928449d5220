"""The cache item: the one place that knows the cache table's attribute names.

An item holds the committed image (what readers and queries see) and, while a write of the
pipeline is in flight, its `Intent` (the `p_*` attributes) beside it, outside every GSI key.
`CacheItem` is built from a DynamoDB item (plain values, as GetItem returns them deserialized,
or as a stream record's image) or from DynamoDB JSON (`from_wire`), and turned back into
either; the attribute builders make the images the stores write (`None`: remove it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from engine import keys
from engine.documents import Document
from engine.store.objects import ObjectInfo

INLINE_BODY_LIMIT = 350_000  # DynamoDB items are capped at 400 KB; above this, S3 only
PK = "pk"  # the table's key: `type#id` (a document), or a reserved `_docsync#…` item
TTL_ATTRIBUTE = "expires_at"  # epoch seconds; DynamoDB's TTL deletes past it (lazily)
# Each GSI's (hash, range) key attributes. Only committed live entries hold them (sparse
# indexes), and only index entries hold `cpk` (engine/keys.py: what the values are).
GSI_KEYS = {
    keys.CUSTOMER_INDEX: ("cpk", "tsk"),
    keys.TIME_INDEX: ("tpk", "tsk"),
    keys.STATUS_INDEX: ("spk", "tsk"),
    keys.KEY_INDEX: ("kpk", "s3_key"),
}
# What the key index projects beside its keys: what the reconciler reads of an entry
# (`CacheItem` for a document's row, `IndexEntry` for a customer-index entry).
KEY_INDEX_PROJECTION = (
    "etag",
    "size",
    "s3_last_modified",
    "sequencer",
    "state",
    TTL_ATTRIBUTE,
    "p_tx",
    "p_at",
    "customers",  # the reconciler checks a document's customer-index entries against them
)
PENDING = ("p_tx", "p_etag", "p_op", "p_at", "p_version", "p_cust")
INDEX_KEYS = ("tpk", "tsk", "spk", "kpk")
TEXT_ATTRIBUTES = (
    "state",
    "s3_key",
    "etag",
    "sequencer",
    "s3_version_id",
    "sync_source",
    "modified_at",
    "created_at",
    "status",
    "title",
    "actor",
    *INDEX_KEYS,
)
NUMBER_ATTRIBUTES = ("size", "s3_last_modified", "synced_at", "expires_at", "version")
_KNOWN = frozenset(
    ("pk", "body", "body_in_s3", "customers", *TEXT_ATTRIBUTES, *NUMBER_ATTRIBUTES, *PENDING)
)

_ser, _de = TypeSerializer(), TypeDeserializer()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def to_ms(ts: datetime) -> int:
    """A time as the table stores it: epoch milliseconds (integer arithmetic: a float product
    can land one below a whole millisecond, so a stored time would not read back equal)."""
    return (ts.astimezone(UTC) - _EPOCH) // _MS


def from_ms(value: Any) -> datetime:
    return _EPOCH + int(value) * _MS


def now_ms() -> int:
    return to_ms(datetime.now(UTC))


def serialize(item: Mapping[str, Any]) -> dict[str, Any]:
    """Plain values → DynamoDB JSON (None: left out)."""
    return {k: _ser.serialize(v) for k, v in item.items() if v is not None}


def deserialize(item: Mapping[str, Any]) -> dict[str, Any]:
    """DynamoDB JSON → plain values (numbers as Decimal)."""
    return {k: _de.deserialize(v) for k, v in item.items()}


def _int(value: Any) -> int | None:
    """A stored number (int, or Decimal from boto3), else None (never a bool, never text)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    return int(value)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _customers(value: Any) -> tuple[str, ...] | None:
    return None if value is None else tuple(str(c) for c in value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Intent:
    """A write of the pipeline in flight (step 1 done, no commit or rollback yet)."""

    tx: str
    op: str | None = None  # put | delete
    etag: str | None = None  # the ETag the put will have ("" for a delete)
    at: int | None = None  # when it began (epoch ms, the writer's clock)
    version: int | None = None  # the version its commit takes
    customers: tuple[str, ...] | None = None  # the committed image's (None: before the index)

    @classmethod
    def from_attributes(cls, attrs: Mapping[str, Any]) -> Intent | None:
        """The intent in an item, or in the attributes step 1 returned (None: there is none)."""
        tx = attrs.get("p_tx")
        if not tx:
            return None
        return cls(
            tx=str(tx),
            op=_text(attrs.get("p_op")),
            etag=_text(attrs.get("p_etag")),
            at=_int(attrs.get("p_at")),
            version=_int(attrs.get("p_version")),
            customers=_customers(attrs.get("p_cust")),
        )

    def as_attributes(self) -> dict[str, Any]:
        attrs = {
            "p_tx": self.tx,
            "p_op": self.op,
            "p_etag": self.etag,
            "p_at": self.at,
            "p_version": self.version,
            "p_cust": None if self.customers is None else list(self.customers),
        }
        return {k: v for k, v in attrs.items() if v is not None}

    def fresh(self, stale_before_ms: int) -> bool:
        """Still within the grace period (by the writer's clock)."""
        return (self.at or 0) >= stale_before_ms


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheItem:
    """One document's item. Every attribute is optional (None: the item does not hold it):
    a tombstone has no body, an intent on a new entry has no committed image at all."""

    type: str
    id: str
    state: str | None = None  # live | deleted; None: nothing committed yet (an intent)
    s3_key: str | None = None
    body: bytes | None = None  # inline (UTF-8 JSON); None with `body_in_s3`: read S3
    body_in_s3: bool | None = None
    etag: str | None = None
    size: int | None = None
    s3_last_modified_ms: int | None = None  # the recorded S3 position (a clock: never back)
    sequencer: str | None = None
    s3_version_id: str | None = None
    sync_source: str | None = None  # write | event | backfill | repair
    synced_at: int | None = None  # epoch ms
    expires_at: int | None = None  # TTL, epoch s
    modified_at: str | None = None
    created_at: str | None = None
    status: str | None = None
    title: str | None = None
    customers: tuple[str, ...] | None = None  # exactly as stored (order, repeats)
    actor: str | None = None
    version: int | None = None
    tpk: str | None = None
    tsk: str | None = None
    spk: str | None = None
    kpk: str | None = None
    intent: Intent | None = None
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    # -- mapping -----------------------------------------------------------------------------

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> CacheItem:
        """From a plain item: GetItem's (deserialized) or a stream record's image."""
        type_name, _, doc_id = str(item["pk"]).partition("#")
        body, in_s3 = item.get("body"), item.get("body_in_s3")
        values: dict[str, Any] = {name: _text(item.get(name)) for name in TEXT_ATTRIBUTES}
        values.update({name: _int(item.get(name)) for name in NUMBER_ATTRIBUTES})
        values["s3_last_modified_ms"] = values.pop("s3_last_modified")
        return cls(
            type=type_name,
            id=doc_id,
            body=body.encode() if isinstance(body, str) else None,
            body_in_s3=None if in_s3 is None else bool(in_s3),
            customers=_customers(item.get("customers")),
            intent=Intent.from_attributes(item),
            extra=MappingProxyType({k: v for k, v in item.items() if k not in _KNOWN}),
            **values,
        )

    @classmethod
    def from_image(cls, image: Mapping[str, Any] | None, pk: str | None) -> CacheItem | None:
        """A stream record's image, under its record's key (None: no image, or no key)."""
        if image is None or pk is None:
            return None
        return cls.from_item({**image, PK: pk})

    @classmethod
    def maybe(cls, item: Mapping[str, Any] | None) -> CacheItem | None:
        """`from_item`, or None where there is no item (a refused write's `exc.item`)."""
        return cls.from_item(item) if item else None

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> CacheItem:
        """From DynamoDB JSON: a raw GetItem item, or a stream record's NewImage/OldImage."""
        return cls.from_item(deserialize(wire))

    def as_item(self) -> dict[str, Any]:
        """The plain item (what `from_item` reads back)."""
        item: dict[str, Any] = {
            "pk": self.pk,
            **self.extra,
            **{name: getattr(self, name) for name in TEXT_ATTRIBUTES},
            "size": self.size,
            "s3_last_modified": self.s3_last_modified_ms,
            "synced_at": self.synced_at,
            "expires_at": self.expires_at,
            "version": self.version,
            "body": None if self.body is None else self.body.decode(),
            "body_in_s3": self.body_in_s3,
            "customers": None if self.customers is None else list(self.customers),
        }
        if self.intent is not None:
            item.update(self.intent.as_attributes())
        return {k: v for k, v in item.items() if v is not None}

    def as_wire(self) -> dict[str, Any]:
        return serialize(self.as_item())

    # -- what the rules ask ------------------------------------------------------------------

    @property
    def pk(self) -> str:
        return keys.cache_pk(self.type, self.id)

    @property
    def live(self) -> bool:
        return self.state == "live"

    @property
    def s3_last_modified(self) -> datetime | None:
        ms = self.s3_last_modified_ms
        return None if ms is None else from_ms(ms)

    @property
    def pending_tx(self) -> str | None:
        return None if self.intent is None else self.intent.tx

    @property
    def pending_at(self) -> datetime | None:
        at = None if self.intent is None else self.intent.at
        return None if at is None else from_ms(at)

    @property
    def committed_etag(self) -> str | None:
        """The ETag of a committed live image with no write in flight (what a conditional
        S3 read may compare), else None."""
        return (self.etag or None) if self.live and self.intent is None else None

    @property
    def stored_customers(self) -> list[str]:
        """The `customers` list exactly as stored (conditions compare it)."""
        return list(self.customers or ())

    @property
    def index_customers(self) -> list[str]:
        """Distinct customers of a committed live image, in order (none for anything else)."""
        return list(dict.fromkeys(self.customers or ())) if self.live else []

    def servable(self, now: datetime | None = None) -> bool:
        """Live and not expired (DynamoDB's TTL deletes lazily, up to days late)."""
        now = now or datetime.now(UTC)
        return self.live and (self.expires_at or 0) > now.timestamp()


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One customer-index entry, as the key index returns it beside its document."""

    doc_key: str  # its document's S3 key
    customer: str
    etag: str | None
    expires_at: int
    doc: str | None = None  # its document's pk (not in the key index's projection)
    tsk: str | None = None  # its document's sort key when written (idem)

    @staticmethod
    def holds(item: Mapping[str, Any]) -> bool:
        return str(item.get("pk", "")).startswith(keys.INDEX_PK)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> IndexEntry:
        doc_key, _, customer = str(item["s3_key"]).rpartition(keys.INDEX_KEY_SEP)
        return cls(
            doc_key,
            customer,
            _text(item.get("etag")),
            _int(item.get("expires_at")) or 0,
            _text(item.get("doc")),
            _text(item.get("tsk")),
        )

    def matches(self, doc: CacheItem, now: datetime) -> bool:
        """Its document is still the committed, live, unexpired image it was written with
        (same ETag and sort key, still listing the customer): else it is drift, never served."""
        return (
            doc.servable(now)
            and doc.etag == self.etag
            and doc.tsk == self.tsk
            and self.customer in (doc.customers or ())
        )


def from_index(item: Mapping[str, Any]) -> CacheItem | IndexEntry:
    """An item an index returned: a customer-index entry, or a document's own item."""
    return IndexEntry.from_item(item) if IndexEntry.holds(item) else CacheItem.from_item(item)


# -- the attribute builders (the images the stores write; None: remove the attribute) ------


def live_attributes(
    doc: Document,
    info: ObjectInfo,
    *,
    prefix: str,
    source: str,
    ttl_days: int,
    inline_limit: int = INLINE_BODY_LIMIT,
    sequencer: str | None = None,
    month_shards: int = 1,
    actor: str | None = None,
) -> dict[str, Any]:
    """The committed image of a live document, index keys included (its month buckets split
    `month_shards` ways: see `keys.month_shard`). `actor`: who wrote it (the pipeline's own
    commits only; without one, the attribute is left as it is)."""
    month = keys.month_bucket(doc.modified_at)
    tsk = keys.time_sort_key(doc.modified_at, doc.id)
    inline = len(doc.body) <= inline_limit
    return {
        "state": "live",
        "s3_key": info.key,
        "body": doc.body.decode() if inline else None,
        "body_in_s3": not inline,
        "etag": info.etag,
        "size": info.size,
        "s3_last_modified": to_ms(info.last_modified),
        "sequencer": sequencer,
        "s3_version_id": info.version_id,  # with bucket versioning on (for history)
        "sync_source": source,
        "synced_at": now_ms(),
        "expires_at": keys.expires_at(info.last_modified, ttl_days),
        "modified_at": keys.iso(doc.modified_at),
        "created_at": keys.iso(doc.created_at),
        "status": doc.status,
        "title": doc.title,
        "customers": list(doc.customer_codes),
        "tpk": keys.time_partition(doc.type, month, doc.id, month_shards),
        "tsk": tsk,
        "spk": keys.status_partition(doc.type, doc.status, month, doc.id, month_shards),
        "kpk": keys.key_shard(prefix, doc.id),
        **({"actor": actor} if actor else {}),
    }


def tombstone_attributes(
    key: str, deleted_at: datetime, *, source: str, ttl_days: int, sequencer: str | None = None
) -> dict[str, Any]:
    """The committed image of a deleted document: out of every index, with a TTL.

    Its position is whole seconds, like S3's LastModified, so positions from every source
    (event times, response dates, this host's clock) stay comparable.
    """
    return {
        "state": "deleted",
        "s3_key": key,
        "s3_last_modified": to_ms(deleted_at.replace(microsecond=0)),
        "sequencer": sequencer,
        "sync_source": source,
        "synced_at": now_ms(),
        "expires_at": keys.expires_at(deleted_at, ttl_days),
        **dict.fromkeys(("body", "body_in_s3", "etag", "size", "customers", *INDEX_KEYS)),
    }


def at_position(attrs: Mapping[str, Any], ms: int) -> dict[str, Any]:
    """An image built above, with its recorded S3 position moved to `ms` (epoch ms)."""
    return {**attrs, "s3_last_modified": ms}


def index_entries(type_name: str, doc_id: str, image: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The customer-index entries of a committed image (none for a tombstone).

    Each carries what a query needs to filter and to verify it against its document (the
    document's ETag): the page itself is read from the documents (BatchGetItem). Their
    month bucket is the document's, shard included."""
    if image.get("state") != "live":
        return []
    month = str(image["tpk"])[len(type_name) + 1 :]  # YYYY-MM, and its shard if sharded
    return [
        {
            "pk": keys.index_pk(type_name, doc_id, customer),
            "cpk": keys.customer_partition(customer, type_name, month),
            "tsk": image["tsk"],
            "kpk": image["kpk"],
            "s3_key": f"{image['s3_key']}{keys.INDEX_KEY_SEP}{customer}",
            "doc": keys.cache_pk(type_name, doc_id),
            "customer": customer,
            "etag": image["etag"],
            "status": image["status"],
            "expires_at": image["expires_at"],
        }
        for customer in customers_of(image)
    ]


def customers_of(image: Mapping[str, Any] | None) -> list[str]:
    """Distinct customers of a committed live image, in order (none for anything else)."""
    if not image or image.get("state") != "live":
        return []
    return list(dict.fromkeys(str(c) for c in image.get("customers") or []))

"""Key layout and time arithmetic: S3 keys, cache keys, GSI keys, month buckets, the window.

Pure functions; every other module asks here how a document is addressed.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta

from engine.documents import ID_PATTERN
from engine.exceptions import InvalidTimeError

_ID_RE = re.compile(ID_PATTERN)
_RELATIVE_RE = re.compile(r"^(\d+)([dhm])$")

# GSI names; their key attributes exist only on committed, live entries (sparse indexes), so
# in-flight writes and tombstones never show up in a query.
TIME_INDEX = "time-index"  # tpk = type#YYYY-MM[#n]     tsk = modified_at#id
STATUS_INDEX = "status-index"  # spk = type#status#YYYY-MM[#n] tsk
KEY_INDEX = "key-index"  # kpk = key shard           s3_key (S3 key order, for the reconciler)
# A GSI cannot fan out over a list attribute, and a document may name several customers: so
# each (document, customer) pair has its own index entry, an adjacency item of the cache table
# under the reserved pk prefix, written in the same transaction as the document's image.
CUSTOMER_INDEX = "customer-index"  # cpk = customer#type#YYYY-MM[#n]  tsk (index entries only)
# [#n]: with `month_shards` > 1, a month bucket is n ways (n = month_shard(id)): each one is a
# GSI partition, which takes about 1,000 writes/s. 1 (the default) writes no suffix at all.
INDEX_PK = "_docsync#cix#"  # reserved: stream consumers skip it, nothing counts it as a document
INDEX_KEY_SEP = "#"  # index entry's key-index sort key: <s3 key>#<customer>, right after the doc
# Transactions hold 100 items at most: documents.MAX_CUSTOMERS caps the entries per document.


def cache_pk(type_name: str, doc_id: str) -> str:
    return f"{type_name}#{doc_id}"


def index_pk(type_name: str, doc_id: str, customer: str) -> str:
    return f"{INDEX_PK}{type_name}#{doc_id}#{customer}"


def customer_partition(customer: str, type_name: str, month: str) -> str:
    return f"{customer}#{type_name}#{month}"


def month_shard(doc_id: str, shards: int) -> int | None:
    """The shard of a document's month buckets: a stable hash of its id (CRC-32, the same in
    every process and release), or None when the buckets are not sharded."""
    if shards <= 1:
        return None
    return zlib.crc32(doc_id.encode()) % shards


def sharded(bucket: str, shard: int | None) -> str:
    """A month-bucket partition key with its shard suffix (none for an unsharded table)."""
    return bucket if shard is None else f"{bucket}#{shard}"


def shard_buckets(bucket: str, shards: int) -> list[str]:
    """Every partition of one month bucket: what a query fans out over."""
    if shards <= 1:
        return [bucket]
    return [f"{bucket}#{n}" for n in range(shards)]


def time_partition(type_name: str, month: str, doc_id: str, shards: int) -> str:
    """A document's time-index partition (`type#YYYY-MM[#n]`)."""
    return sharded(f"{type_name}#{month}", month_shard(doc_id, shards))


def status_partition(type_name: str, status: str, month: str, doc_id: str, shards: int) -> str:
    """A document's status-index partition (`type#status#YYYY-MM[#n]`)."""
    return sharded(f"{type_name}#{status}#{month}", month_shard(doc_id, shards))


def stray_buckets(type_name: str, month: str, shards: int) -> list[str]:
    """Time-index partitions of one month that a table written with another shard count holds
    and that this count never queries: the unsharded bucket (a table that had 1), and shard
    `#shards` (one that had more). Growing from m > 1 to n > m leaves none: the old shards
    are among the new ones. Nothing to look at for 1 (see docs/scaling.md)."""
    if shards <= 1:
        return []
    base = f"{type_name}#{month}"
    return [base, f"{base}#{shards}"]


def s3_key(prefix: str, doc_id: str) -> str:
    return f"{prefix}{doc_id}.json"


def key_to_doc(key: str, prefixes: Mapping[str, str]) -> tuple[str, str] | None:
    """(type, id) for an S3 key under a document prefix, or None for any other key."""
    for type_name, prefix in prefixes.items():
        if key.startswith(prefix) and key.endswith(".json"):
            doc_id = key[len(prefix) : -len(".json")]
            if _ID_RE.fullmatch(doc_id):
                return type_name, doc_id
    return None


def iso(ts: datetime) -> str:
    """Canonical sortable UTC form used in index keys (four-digit years, always)."""
    ts = ts.astimezone(UTC)
    return f"{ts.year:04d}-{ts:%m-%dT%H:%M:%S.%f}Z"


def parse_iso(value: str) -> datetime:
    ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC)


def month_bucket(ts: datetime) -> str:
    ts = ts.astimezone(UTC)
    return f"{ts.year:04d}-{ts.month:02d}"


def tumbling_start(ts: float, window_s: int) -> int:
    """The start (epoch seconds) of the fixed `window_s` window that holds `ts`: windows are
    aligned on the epoch, so every process puts a moment in the same one."""
    return int(ts // window_s * window_s)


def months_desc(since: datetime, until: datetime) -> Iterator[str]:
    """Month buckets (UTC, like the index) from `until` back to `since`, newest first."""
    since, until = since.astimezone(UTC), until.astimezone(UTC)
    year, month = until.year, until.month
    while (year, month) >= (since.year, since.month):
        yield f"{year:04d}-{month:02d}"
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)


def time_sort_key(modified_at: datetime, doc_id: str) -> str:
    return f"{iso(modified_at)}#{doc_id}"


def key_shard(prefix: str, doc_id: str) -> str:
    """Key-index partition: the type prefix plus the id's first character.

    It is also an S3 listing prefix, so the reconciler can merge one shard of each side.
    """
    return prefix + doc_id[:1]


def parse_time(value: str, now: datetime | None = None) -> datetime:
    """ISO-8601, or relative to now: `90d`, `12h`, `30m`."""
    now = now or datetime.now(UTC)
    match = _RELATIVE_RE.match(value.strip())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        try:
            delta = timedelta(**{{"d": "days", "h": "hours", "m": "minutes"}[unit]: amount})
            return now - delta
        except (OverflowError, ValueError):
            raise InvalidTimeError(f"invalid time {value!r}: too far back", ["time"]) from None
    try:
        return parse_iso(value)
    except ValueError:
        raise InvalidTimeError(
            f"invalid time {value!r}: use ISO-8601 (2026-01-31T00:00:00Z) or 90d / 12h / 30m",
            ["time"],
        ) from None


def expires_at(s3_last_modified: datetime, ttl_days: int) -> int:
    """TTL epoch seconds: the window is measured from the object's last write in S3."""
    return int((s3_last_modified + timedelta(days=ttl_days)).timestamp())


def in_window(s3_last_modified: datetime, ttl_days: int, now: datetime | None = None) -> bool:
    now = now or datetime.now(UTC)
    return s3_last_modified > now - timedelta(days=ttl_days)


def window_start(ttl_days: int, now: datetime | None = None) -> datetime:
    return (now or datetime.now(UTC)) - timedelta(days=ttl_days)

"""The convergence rules, shared by events, backfill and (next) repair: make one cache entry
equal to what S3 holds for its key, never older than it was.

1. A conditional write on the entry's recorded S3 position (`s3_last_modified`): an older
   observation never overwrites a newer one, whichever thread or process finishes first.
2. When refused at the same position (two writes in one second: S3's LastModified has second
   precision, and moto sends no sequencer) or against a tombstone, S3 is asked again (HEAD is
   strongly consistent): if it still holds exactly what we are about to write, that is the
   truth, and we compare-and-swap against the entry we saw.
3. A fresh intent of the write pipeline is left alone (`in_flight`: retry later), unless S3
   already holds its ETag, in which case the intent is committed.
4. The customer index moves with the image: every write puts the entries of the new image's
   customers and deletes those of the customers the entry listed before, in one transaction,
   conditional on that list (read, or assumed unchanged when the caller did not read).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from loguru import logger

from engine import keys
from engine.documents import Document
from engine.settings import Settings
from engine.store.base import ConditionFailed
from engine.store.cache import (
    CacheStore,
    customers_of,
    live_attributes,
    tombstone_attributes,
)
from engine.store.objects import ObjectInfo, ObjectStore, StoredObject

INLINE_BODY_LIMIT = 350_000  # DynamoDB items are capped at 400 KB; above this, S3 only

SyncOutcome = Literal["applied", "committed", "stale", "in_flight"]


class Unread:
    """The caller did not read the entry (as opposed to reading it and finding nothing)."""


UNREAD = Unread()


class CacheSync:
    def __init__(self, settings: Settings, cache: CacheStore, objects: ObjectStore) -> None:
        self.settings = settings
        self.cache = cache
        self.objects = objects
        self._prefixes = settings.prefixes()

    def _stale_before(self) -> datetime:
        return datetime.now(UTC) - timedelta(seconds=self.settings.inflight_grace_s)

    def upsert(
        self,
        doc: Document,
        stored: StoredObject,
        source: str,
        sequencer: str | None = None,
        current: dict[str, Any] | None = None,
        read: bool = False,
    ) -> SyncOutcome:
        """Cache `doc` as S3 holds it (`stored`). `current`: the item, if the caller read it
        (`read`: it did, so None means absent, and a plainly older entry is replaced in one
        cheap PutItem)."""
        attrs = live_attributes(
            doc,
            stored.info,
            prefix=self._prefixes[doc.type],
            source=source,
            ttl_days=self.settings.cache_ttl_days,
            inline_limit=INLINE_BODY_LIMIT,
            sequencer=sequencer,
            month_shards=self.settings.month_shards,
        )
        if (
            current is not None
            and current.get("p_tx")
            and current.get("p_etag") == stored.info.etag
            and current.get("p_op") == "put"
        ):
            try:
                version = int(current["p_version"])
                self.cache.commit_live(
                    doc.type, doc.id, str(current["p_tx"]), attrs, version, _pending(current)
                )
                return "committed"
            except ConditionFailed:
                return "in_flight"
        seen = current if read else UNREAD
        return self._write(doc.type, doc.id, attrs, stored.info.key, stored.info, seen)

    def tombstone(
        self,
        type_name: str,
        doc_id: str,
        deleted_at: datetime,
        source: str,
        sequencer: str | None = None,
        current: dict[str, Any] | None = None,
        read: bool = False,
    ) -> SyncOutcome:
        """Record that S3 no longer holds the key (so a late create cannot resurrect it)."""
        key = keys.s3_key(self._prefixes[type_name], doc_id)
        if current is not None and current.get("p_tx") and current.get("p_op") == "delete":
            try:
                self.cache.commit_deleted(
                    type_name,
                    doc_id,
                    str(current["p_tx"]),
                    deleted_at,
                    self.settings.tombstone_ttl_days,
                    key=key,
                    prev_customers=_pending(current),
                    source=source,
                )
                return "committed"
            except ConditionFailed:
                return "in_flight"
        attrs = tombstone_attributes(
            key,
            deleted_at,
            source=source,
            ttl_days=self.settings.tombstone_ttl_days,
            sequencer=sequencer,
        )
        return self._write(type_name, doc_id, attrs, key, None, current if read else UNREAD)

    def _write(
        self,
        type_name: str,
        doc_id: str,
        attrs: dict[str, Any],
        key: str,
        wanted: ObjectInfo | None,
        seen_before: dict[str, Any] | Unread | None = UNREAD,
    ) -> SyncOutcome:
        replaceable = _replaceable(seen_before, attrs)
        if replaceable is not None:
            assert not isinstance(seen_before, Unread)
            try:
                self.cache.replace(
                    type_name,
                    doc_id,
                    attrs,
                    version_seen=replaceable or None,
                    prev_customers=_stored_customers(seen_before),
                )
                return "applied"
            except ConditionFailed:
                pass  # it changed since it was read: decide on the entry as it is now
        # Unread: assume the entry lists the customers being written (a refill); if it does
        # not, the write is refused with the entry, and the path below decides on it.
        believed = (
            list(attrs.get("customers") or [])
            if isinstance(seen_before, Unread)
            else _stored_customers(seen_before)
        )
        try:
            self.cache.sync(
                type_name,
                doc_id,
                attrs,
                stale_before=self._stale_before(),
                prev_customers=believed,
            )
            return "applied"
        except ConditionFailed as refused:
            seen = refused.item or {}
        if seen and _stored_customers(seen) != believed:
            try:  # refused for the customers alone, maybe: once more, with the ones it holds
                self.cache.sync(
                    type_name,
                    doc_id,
                    attrs,
                    stale_before=self._stale_before(),
                    prev_customers=_stored_customers(seen),
                )
                return "applied"
            except ConditionFailed as again:
                seen = again.item or {}
        if seen.get("p_tx") and int(seen.get("p_at", 0)) >= _ms(self._stale_before()):
            return "in_flight"
        if seen.get("state") == attrs["state"] and seen.get("etag") == attrs.get("etag"):
            return "stale"  # already says the same thing
        now = self.objects.head(key)
        still_true = (
            (now is None) if wanted is None else (now is not None and now.etag == wanted.etag)
        )
        if not still_true:
            return "stale"
        # The recorded position never goes backwards: it is a clock for later comparisons
        # (a tombstone's may come from this host's clock, ahead of S3's second-precision one).
        attrs = attrs | {
            "s3_last_modified": max(
                int(attrs["s3_last_modified"]), int(seen.get("s3_last_modified", 0))
            )
        }
        try:
            self.cache.sync(
                type_name,
                doc_id,
                attrs,
                stale_before=self._stale_before(),
                prev_customers=_stored_customers(seen),
                expect={
                    "state": seen.get("state"),
                    "etag": seen.get("etag"),
                    "s3_last_modified": seen.get("s3_last_modified"),
                },
            )
        except ConditionFailed:
            return "stale"  # changed again meanwhile; its own event will bring it here
        logger.bind(op="sync.cas", key=key).debug("same-position conflict resolved by S3 re-check")
        return "applied"


def _replaceable(seen: dict[str, Any] | Unread | None, attrs: dict[str, Any]) -> int | None:
    """The version a whole-image replace may be conditioned on (0: the entry was absent), or
    None when only the general conditional update can decide (unread, an intent, not older).

    Sound because every change of a committed image bumps `version` and an intent sets
    `p_tx`: "version unchanged and no intent" means the entry is still the one that was read.
    """
    if isinstance(seen, Unread):
        return None
    if seen is None:
        return 0
    if "p_tx" in seen or "version" not in seen:
        return None
    if int(seen.get("s3_last_modified", 0)) >= int(attrs["s3_last_modified"]):
        return None
    return int(seen["version"])


def _stored_customers(item: dict[str, Any] | None) -> list[str]:
    """The `customers` list exactly as the item stores it (the sync condition compares it)."""
    return [str(c) for c in (item or {}).get("customers") or []]


def _pending(item: dict[str, Any]) -> list[str]:
    """The customers the intent recorded for the committed image (`p_cust`); an intent
    written before the customer index existed falls back to the committed image's."""
    if "p_cust" in item:
        return [str(c) for c in item["p_cust"] or []]
    return customers_of(item)


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)

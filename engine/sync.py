"""The convergence rules, shared by the listener, the reconciler, the stream-driven repair and
backfill: make one cache entry equal to what S3 holds for its key, never older than it was.

`converge` is the one operation "read S3 now, parse, check the id, make the entry equal, or
tombstone"; `look` is its first half (one S3 read), for a caller that decides between the two
(the reconciler verifies drift without touching the cache; the stream repair may roll back).

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

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from loguru import logger

from engine import keys
from engine.documents import Document, parse_document
from engine.exceptions import InvalidDocumentError, NotFoundError
from engine.settings import Settings
from engine.store.abc import Objects
from engine.store.base import ConditionFailed
from engine.store.cache import CacheStore
from engine.store.item import (
    INLINE_BODY_LIMIT,
    PK,
    CacheItem,
    at_position,
    live_attributes,
    to_ms,
    tombstone_attributes,
)
from engine.store.objects import ObjectInfo, StoredObject

SyncOutcome = Literal["applied", "committed", "stale", "in_flight"]
ConvergeOutcome = Literal[
    "applied",  # the entry now equals S3 (upserted or tombstoned)
    "committed",  # a crashed pipeline write's intent, committed (S3 holds its content)
    "stale",  # a newer observation is already cached
    "in_flight",  # a fresh pipeline write is in progress: retry later
    "unchanged",  # the cache already equals S3 (its ETag, or a tombstone for a missing key)
    "out_of_window",  # older than the cache window: not cached
    "invalid",  # S3 holds no valid document for the key (a live entry was tombstoned)
]
Seen = Literal["same", "absent", "invalid", "document"]


class Unread:
    """The caller did not read the entry (as opposed to reading it and finding nothing)."""


UNREAD = Unread()


@dataclass(frozen=True, slots=True, kw_only=True)
class Hint:
    """What an S3 event claims. Never content: only a position for ordering writes (its
    sequencer, when S3 holds the ETag it names or it reports a removal) and a removal time."""

    etag: str | None = None
    sequencer: str | None = None
    removed: bool = False
    at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Look:
    """What S3 holds for a key now (one read): `same` (it answered 304 to the cached ETag),
    `absent`, `invalid` (`problem` says why), or a `document` (parsed, its id checked)."""

    key: str
    seen: Seen
    stored: StoredObject | None = None
    doc: Document | None = None
    problem: InvalidDocumentError | None = None


@dataclass(frozen=True, slots=True)
class Converged:
    """What `converge` did: `outcome`, and `written`, the outcome of the write it made (None:
    none; for an invalid object, the tombstone of the live entry it replaced, if any)."""

    outcome: ConvergeOutcome
    look: Look
    written: SyncOutcome | None = None


class CacheSync:
    def __init__(self, settings: Settings, cache: CacheStore, objects: Objects) -> None:
        self.settings = settings
        self.cache = cache
        self.objects = objects
        self._prefixes = settings.prefixes

    def stale_before(self) -> datetime:
        """An intent begun before this moment is abandoned (its writer is taken for dead)."""
        return datetime.now(UTC) - timedelta(seconds=self.settings.inflight_grace_s)

    def look(self, type_name: str, doc_id: str, cached_etag: str | None = None) -> Look:
        """Read S3 now (conditionally on `cached_etag`: a duplicate costs no download), parse,
        check the id against the key. One S3 call; S3 errors other than 404 propagate."""
        key = keys.s3_key(self._prefixes[type_name], doc_id)
        try:
            if cached_etag:
                found = self.objects.get_if_changed(key, cached_etag)
                if found is None:
                    return Look(key=key, seen="same")
                stored = found
            else:
                stored = self.objects.get(key)
        except NotFoundError:
            return Look(key=key, seen="absent")
        try:
            doc = parse_document(stored.body, type_name)
            if doc.id != doc_id:
                raise InvalidDocumentError(f"id {doc.id!r} does not match the key", ["id"])
        except InvalidDocumentError as exc:
            return Look(key=key, seen="invalid", stored=stored, problem=exc)
        return Look(key=key, seen="document", stored=stored, doc=doc)

    def converge(
        self,
        type_name: str,
        doc_id: str,
        source: str,
        *,
        current: CacheItem | Unread | None = UNREAD,
        look: Look | None = None,
        hint: Hint | None = None,
        check_window: bool = True,
    ) -> Converged:
        """Make the entry equal to what S3 holds now, or tombstone it.

        `current`: the item, if the caller read it (else one GetItem, before S3); `look`: S3,
        if the caller read it (else one read, conditional on the committed ETag); `hint`: the
        event that brought us here; `check_window`: leave out-of-window objects alone (the
        reconciler decided the window itself). Cost: GetItem, S3 read, one conditional write
        (none when the cache already says the same).
        """
        if isinstance(current, Unread):
            current = self.cache.get(type_name, doc_id)
        if look is None:
            look = self.look(type_name, doc_id, current.committed_etag if current else None)
        if look.seen == "same":
            return Converged("unchanged", look)
        hint = hint or Hint()
        if look.stored is None:  # absent
            if current and current.state == "deleted" and current.intent is None:
                return Converged("unchanged", look)
            deleted_at = hint.at if hint.removed and hint.at is not None else datetime.now(UTC)
            sequencer = hint.sequencer if hint.removed else None
            written = self.tombstone(
                type_name, doc_id, deleted_at, source, sequencer, current=current, read=True
            )
            return Converged(written, look, written)
        stored = look.stored
        if check_window and not keys.in_window(
            stored.info.last_modified, self.settings.cache_ttl_days
        ):
            return Converged("out_of_window", look)
        if look.doc is None:  # invalid
            if current is None or not current.live:
                return Converged("invalid", look)
            # S3 no longer holds the cached document: readers must not be served it.
            written = self.tombstone(type_name, doc_id, stored.info.last_modified, source)
            return Converged("invalid", look, written)
        sequencer = hint.sequencer if hint.etag == stored.info.etag else None
        written = self.upsert(look.doc, stored, source, sequencer, current=current, read=True)
        return Converged(written, look, written)

    def upsert(
        self,
        doc: Document,
        stored: StoredObject,
        source: str,
        sequencer: str | None = None,
        current: CacheItem | None = None,
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
        intent = current.intent if current is not None else None
        if (
            current is not None
            and intent is not None
            and intent.etag == stored.info.etag
            and intent.op == "put"
        ):
            try:
                version = int(intent.version or 0)
                self.cache.commit_live(
                    doc.type, doc.id, intent.tx, attrs, version, _pending(current)
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
        current: CacheItem | None = None,
        read: bool = False,
    ) -> SyncOutcome:
        """Record that S3 no longer holds the key (so a late create cannot resurrect it)."""
        key = keys.s3_key(self._prefixes[type_name], doc_id)
        intent = current.intent if current is not None else None
        if current is not None and intent is not None and intent.op == "delete":
            try:
                self.cache.commit_deleted(
                    type_name,
                    doc_id,
                    intent.tx,
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
        seen_before: CacheItem | Unread | None = UNREAD,
    ) -> SyncOutcome:
        image = CacheItem.from_item({PK: keys.cache_pk(type_name, doc_id), **attrs})
        position = image.s3_last_modified_ms or 0
        replaceable = _replaceable(seen_before, position)
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
            image.stored_customers
            if isinstance(seen_before, Unread)
            else _stored_customers(seen_before)
        )
        try:
            self.cache.sync(
                type_name,
                doc_id,
                attrs,
                stale_before=self.stale_before(),
                prev_customers=believed,
            )
            return "applied"
        except ConditionFailed as refused:
            seen = CacheItem.maybe(refused.item)
        if seen is not None and seen.stored_customers != believed:
            try:  # refused for the customers alone, maybe: once more, with the ones it holds
                self.cache.sync(
                    type_name,
                    doc_id,
                    attrs,
                    stale_before=self.stale_before(),
                    prev_customers=seen.stored_customers,
                )
                return "applied"
            except ConditionFailed as again:
                seen = CacheItem.maybe(again.item)
        if seen is not None and seen.intent and seen.intent.fresh(to_ms(self.stale_before())):
            return "in_flight"
        if _state(seen) == image.state and _etag(seen) == image.etag:
            return "stale"  # already says the same thing
        now = self.objects.head(key)
        still_true = (
            (now is None) if wanted is None else (now is not None and now.etag == wanted.etag)
        )
        if not still_true:
            return "stale"
        # The recorded position never goes backwards: it is a clock for later comparisons
        # (a tombstone's may come from this host's clock, ahead of S3's second-precision one).
        seen_at = seen.s3_last_modified_ms if seen is not None else None
        attrs = at_position(attrs, max(position, seen_at or 0))
        try:
            self.cache.sync(
                type_name,
                doc_id,
                attrs,
                stale_before=self.stale_before(),
                prev_customers=_stored_customers(seen),
                expect=seen or CacheItem(type=type_name, id=doc_id),  # absent: as seen
            )
        except ConditionFailed:
            return "stale"  # changed again meanwhile; its own event will bring it here
        logger.bind(op="sync.cas", key=key).debug("same-position conflict resolved by S3 re-check")
        return "applied"


def _replaceable(seen: CacheItem | Unread | None, position: int) -> int | None:
    """The version a whole-image replace may be conditioned on (0: the entry was absent), or
    None when only the general conditional update can decide (unread, an intent, not older).

    Sound because every change of a committed image bumps `version` and an intent sets
    `p_tx`: "version unchanged and no intent" means the entry is still the one that was read.
    """
    if isinstance(seen, Unread):
        return None
    if seen is None:
        return 0
    if seen.intent is not None or seen.version is None:
        return None
    if (seen.s3_last_modified_ms or 0) >= position:
        return None
    return seen.version


def _stored_customers(item: CacheItem | None) -> list[str]:
    """The `customers` list exactly as the item stores it (the sync condition compares it)."""
    return item.stored_customers if item is not None else []


def _state(item: CacheItem | None) -> str | None:
    return item.state if item is not None else None


def _etag(item: CacheItem | None) -> str | None:
    return item.etag if item is not None else None


def _pending(item: CacheItem) -> list[str]:
    """The customers the intent recorded for the committed image (`p_cust`); an intent
    written before the customer index existed falls back to the committed image's."""
    if item.intent is not None and item.intent.customers is not None:
        return list(item.intent.customers)
    return item.index_customers

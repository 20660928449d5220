"""Document history from the stream: one entry per committed change. Pure: no I/O.

An entry is derived from one record's images only, and every field is taken from them (never
from the time it is processed), so a redelivered, replayed or reordered record yields the very
same entry: storing it is an idempotent overwrite of one item (key `type#id`, `version`).

What counts as a change (the committed `version` moved; the same rules as the analytics):
create (live, not live before), update (live → live with other content or another status),
delete (a tombstone over a non-tombstone). Not changes: intents, rollbacks, no-op re-puts,
a tombstone's position refresh, a same-content re-sync, and fills after a miss (`backfill`:
S3 already held that content, and it was recorded when written).

One limit of the key: `version` restarts at 1 when a cache entry (a tombstone included) has
expired by TTL before the document is written again; that new life's entries then overwrite
the old life's entries of the same versions. Tombstones live `tombstone_ttl_days`.

The actor is recorded only for the pipeline's own commits (`sync_source` = write): a listener
or a repair does not carry it over from an earlier image.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from engine.readmetrics.item import is_reserved
from engine.store.item import CacheItem
from engine.streams.records import ChangeRecord

Change = Literal["create", "update", "delete"]
DAY_S = 86_400


def _iso_ms(ms: int | None) -> str | None:
    if ms is None:
        return None
    stamp = datetime.fromtimestamp(ms / 1000, UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def change_of(old: CacheItem | None, new: CacheItem) -> Change | None:
    """The change one committed image makes over the previous one (None: not a change)."""
    state = new.state
    if state not in ("live", "deleted"):
        return None  # an intent on a new entry: nothing committed yet
    if old is not None and old.version == new.version:
        return None  # an intent, a rollback, or a write that changed nothing
    if new.sync_source == "backfill":
        return None
    old_state = old.state if old is not None else None
    if state == "deleted":
        return "delete" if old_state != "deleted" else None
    if old is None or old_state != "live":
        return "create"
    if old.etag == new.etag and old.status == new.status:
        return None
    return "update"


def history_entry(record: ChangeRecord, history_days: int) -> dict[str, Any] | None:
    """The history item one stream record makes, or None when it is no committed change."""
    pk = record.pk
    if record.event_name == "REMOVE" or pk is None or "#" not in pk or is_reserved(pk):
        return None
    new, old = record.new_item, record.old_item
    if new is None:
        return None
    change = change_of(old, new)
    if change is None or new.version is None:
        return None
    shown = new if change != "delete" else old  # a tombstone keeps no status
    synced = new.synced_at
    entry: dict[str, Any] = {
        "pk": pk,
        "version": new.version,
        "type": new.type,
        "id": new.id,
        "change": change,
        "status_from": old.status if old is not None and change != "create" else None,
        "status_to": new.status if change != "delete" else None,
        "customers": list(shown.customers or ()) if shown is not None else [],
        "etag": new.etag if change != "delete" else None,
        "s3_last_modified": _iso_ms(new.s3_last_modified_ms),
        "sync_source": new.sync_source,
        "at": _iso_ms(synced),
        "expires_at": (synced or 0) // 1000 + history_days * DAY_S,
    }
    if new.sync_source == "write" and new.actor:
        entry["actor"] = new.actor
    if new.s3_version_id:
        entry["s3_version_id"] = new.s3_version_id
    return {k: v for k, v in entry.items() if v is not None and v != []}


def public(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An entry as `docsync history` and the HTTP API show it (no table keys or TTL)."""
    return {k: v for k, v in entry.items() if k not in ("pk", "expires_at")}

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
from engine.streams.records import ChangeRecord

Change = Literal["create", "update", "delete"]
DAY_S = 86_400


def _iso_ms(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    stamp = datetime.fromtimestamp(float(value) / 1000, UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def change_of(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> Change | None:
    """The change one committed image makes over the previous one (None: not a change)."""
    state = new.get("state")
    before = old or {}
    if state not in ("live", "deleted"):
        return None  # an intent on a new entry: nothing committed yet
    if old is not None and before.get("version") == new.get("version"):
        return None  # an intent, a rollback, or a write that changed nothing
    if new.get("sync_source") == "backfill":
        return None
    old_state = before.get("state")
    if state == "deleted":
        return "delete" if old_state != "deleted" else None
    if old_state != "live":
        return "create"
    if before.get("etag") == new.get("etag") and before.get("status") == new.get("status"):
        return None
    return "update"


def history_entry(record: ChangeRecord, history_days: int) -> dict[str, Any] | None:
    """The history item one stream record makes, or None when it is no committed change."""
    pk = record.pk
    if (
        record.event_name == "REMOVE"
        or record.new is None
        or pk is None
        or "#" not in pk
        or is_reserved(pk)
    ):
        return None
    new, old = record.new, record.old
    change = change_of(old, new)
    if change is None or not isinstance(new.get("version"), int):
        return None
    type_name, _, doc_id = pk.partition("#")
    shown = new if change != "delete" else (old or {})  # a tombstone keeps no status
    synced = new.get("synced_at")
    at_s = int(synced) // 1000 if isinstance(synced, int | float) else 0
    entry: dict[str, Any] = {
        "pk": pk,
        "version": int(new["version"]),
        "type": type_name,
        "id": doc_id,
        "change": change,
        "status_from": (old or {}).get("status") if change != "create" else None,
        "status_to": new.get("status") if change != "delete" else None,
        "customers": [str(c) for c in shown.get("customers") or []],
        "etag": new.get("etag") if change != "delete" else None,
        "s3_last_modified": _iso_ms(new.get("s3_last_modified")),
        "sync_source": new.get("sync_source"),
        "at": _iso_ms(synced),
        "expires_at": at_s + history_days * DAY_S,
    }
    if new.get("sync_source") == "write" and new.get("actor"):
        entry["actor"] = str(new["actor"])
    if new.get("s3_version_id"):
        entry["s3_version_id"] = str(new["s3_version_id"])
    return {k: v for k, v in entry.items() if v is not None and v != []}


def public(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An entry as `docsync history` and the HTTP API show it (no table keys or TTL)."""
    return {k: v for k, v in entry.items() if k not in ("pk", "expires_at")}

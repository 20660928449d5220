"""`docsync history`: every committed change of one document, newest first (the history
table the stream consumers fill; engine/streams/history.py says what an entry holds). JSON:
`{"type","id","items":[…]}`, the shape of `GET /v1/{type}/{id}/history`."""

from __future__ import annotations

import json
from typing import Any

import click

from engine import keys
from engine.app import Engine
from engine.aws import AwsClients
from engine.cli.group import TYPE_CHOICE, common, with_settings
from engine.cli.output import emit, table
from engine.exceptions import NotFoundError
from engine.settings import Settings
from engine.store.history import HistoryStore
from engine.streams.history import public

COLUMNS = ["version", "change", "status", "at", "source", "actor", "etag"]


@click.command("history")
@click.option("--type", "type_name", type=TYPE_CHOICE, required=True)
@click.option("--limit", type=click.IntRange(1, 10000), default=None, help="Newest N entries.")
@click.argument("doc_id")
@common()
@with_settings
def history_cmd(
    settings: Settings, fmt: str, type_name: str, doc_id: str, limit: int | None
) -> None:
    """What happened to a document, and when: one entry per committed change."""
    store = HistoryStore(AwsClients(settings).dynamodb, settings.history_table)
    entries = [public(e) for e in store.list(type_name, doc_id, limit)]
    if not entries:
        raise NotFoundError(f"no history for {type_name} {doc_id!r}")

    def text(data: dict[str, Any]) -> None:
        table(f"{type_name} {doc_id}", COLUMNS, [_row(e) for e in data["items"]])

    emit({"type": type_name, "id": doc_id, "items": entries}, fmt, text)


def read_version(settings: Settings, type_name: str, doc_id: str, version: int) -> Any:
    """`docsync get --version N`: the S3 version its history entry recorded."""
    engine = Engine.build(settings)
    entry = HistoryStore(engine.clients.dynamodb, settings.history_table).get(
        type_name, doc_id, version
    )
    if entry is None:
        raise NotFoundError(f"{type_name} {doc_id!r} has no history entry for version {version}")
    if entry.get("change") == "delete":
        raise NotFoundError(f"version {version} of {type_name} {doc_id!r} is its deletion")
    version_id = entry.get("s3_version_id")
    if not version_id:
        raise NotFoundError(
            f"version {version} of {type_name} {doc_id!r} has no S3 versionId"
            " (bucket versioning was off when it was written)"
        )
    key = keys.s3_key(settings.prefixes[type_name], doc_id)
    return json.loads(engine.objects.get_version(key, str(version_id)).body)


def _row(entry: dict[str, Any]) -> list[Any]:
    before, after = entry.get("status_from"), entry.get("status_to")
    if entry["change"] == "update" and before != after:
        status = f"{before} → {after}"
    else:
        status = after or before or ""
    return [
        entry["version"],
        entry["change"],
        status,
        entry.get("at", ""),
        entry.get("sync_source", ""),
        entry.get("actor", ""),
        entry.get("etag", ""),
    ]

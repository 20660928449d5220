"""`docsync put`, `get`, `delete`, `query`: documents through the engine."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

import click

from engine import keys
from engine.app import Engine
from engine.cli.group import TYPE_CHOICE, common, with_settings
from engine.cli.history_cmd import read_version
from engine.cli.output import console, emit, resolve_format, table
from engine.documents import TYPES, Document, parse_document
from engine.exceptions import InvalidDocumentError, InvalidRequestError
from engine.reader import Query
from engine.settings import Settings


def _read_documents(stream: IO[str], type_name: str) -> list[Document]:
    """One JSON object, or JSON Lines. All are validated before any is written."""
    text = stream.read()
    if not text.strip():
        raise InvalidDocumentError("no document on input", ["<input>"])
    try:
        single = json.loads(text)
    except ValueError:
        single = None
    if isinstance(single, dict):
        return [parse_document(single, type_name)]
    documents, errors = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            documents.append(parse_document(line, type_name))
        except InvalidDocumentError as exc:
            errors.append(f"line {number}: {exc}")
    if errors:
        raise InvalidDocumentError(
            f"{len(errors)} invalid document(s), nothing written: " + " | ".join(errors[:20]),
            ["<input>"],
        )
    return documents


@click.command("put")
@click.option("--type", "type_name", type=TYPE_CHOICE, required=True)
@click.option(
    "--expected-version",
    type=int,
    default=None,
    help="Optimistic lock: fail unless the cached version is this (0 = must not exist).",
)
@click.argument("source", type=click.File("r", encoding="utf-8"))
@click.option(
    "--actor",
    default=None,
    help="Who writes, recorded in the document's history (default: DOCSYNC_ACTOR).",
)
@common(mutating=True)
@with_settings
def put_cmd(
    settings: Settings,
    fmt: str,
    type_name: str,
    expected_version: int | None,
    source: IO[str],
    actor: str | None,
) -> None:
    """Write documents through the pipeline: FILE, - (stdin), or a JSON Lines stream."""
    documents = _read_documents(source, type_name)
    engine = Engine.build(settings)
    if len(documents) == 1:
        result = engine.pipeline.put(documents[0], expected_version, actor)
        data = result.as_dict() | ({"dry_run": True} if result.dry_run else {})
        emit(
            data,
            fmt,
            lambda d: console().print(
                f"wrote {d['type']} {d['id']} version {d['version']} etag {d['etag']}"
            ),
        )
        return
    if expected_version is not None:
        raise InvalidRequestError(
            "--expected-version applies to a single document", ["--expected-version"]
        )
    with ThreadPoolExecutor(settings.concurrency) as pool:
        results = list(pool.map(lambda d: engine.pipeline.put(d, None, actor), documents))
    for result in results:
        emit(
            result.as_dict(),
            "json" if resolve_format(fmt) == "json" else fmt,
            lambda d: console().print(f"wrote {d['type']} {d['id']} version {d['version']}"),
        )


@click.command("get")
@click.option("--type", "type_name", type=TYPE_CHOICE, required=True)
@click.option(
    "--version",
    "version",
    type=click.IntRange(1),
    default=None,
    help="That version, read back from S3 (its history entry's versionId; bucket versioning).",
)
@click.argument("doc_id")
@common()
@with_settings
def get_cmd(settings: Settings, fmt: str, type_name: str, doc_id: str, version: int | None) -> None:
    """Read one document: the cache, or S3 on a miss (and backfill)."""
    if version is not None:
        document = read_version(settings, type_name, doc_id, version)
        emit(document, fmt, lambda d: console().print_json(json.dumps(d)))
        return
    result = Engine.build(settings).reader.get(type_name, doc_id)
    emit(result.document, fmt, lambda d: console().print_json(json.dumps(d)))


@click.command("delete")
@click.option("--type", "type_name", type=TYPE_CHOICE, required=True)
@click.option("--expected-version", type=int, default=None)
@click.argument("doc_id")
@click.option(
    "--actor",
    default=None,
    help="Who writes, recorded in the document's history (default: DOCSYNC_ACTOR).",
)
@common(mutating=True)
@with_settings
def delete_cmd(
    settings: Settings,
    fmt: str,
    type_name: str,
    doc_id: str,
    expected_version: int | None,
    actor: str | None,
) -> None:
    """Delete from S3 and leave a tombstone in the cache."""
    result = Engine.build(settings).pipeline.delete(type_name, doc_id, expected_version, actor)
    data = result.as_dict() | ({"dry_run": True} if result.dry_run else {})

    def text(d: dict[str, Any]) -> None:
        gone = " (already absent)" if d.get("already_absent") else ""
        console().print(f"deleted {d['type']} {d['id']}: {d['deleted']}{gone}")

    emit(data, fmt, text)


# -- query ------------------------------------------------------------------------------------


@click.command("query")
@click.option(
    "--type", "type_names", type=TYPE_CHOICE, multiple=True, help="Repeatable; default: every type."
)
@click.option("--customer", default=None)
@click.option("--status", default=None)
@click.option("--since", default=None, help="ISO-8601 or relative (90d, 12h); default: the window.")
@click.option("--until", default=None)
@click.option("--limit", type=click.IntRange(1, 10000), default=None)
@click.option("--page-token", default=None)
@click.option("--all", "all_pages", is_flag=True, help="Page through to the end.")
@click.option("--count", "count_only", is_flag=True, help='Answer {"total": N} only.')
@click.option(
    "--source",
    type=click.Choice(["auto", "cache", "s3"]),
    default="auto",
    help="auto: the cache, S3 while DynamoDB is unavailable.",
)
@common()
@with_settings
def query_cmd(
    settings: Settings,
    fmt: str,
    type_names: tuple[str, ...],
    customer: str | None,
    status: str | None,
    since: str | None,
    until: str | None,
    limit: int | None,
    page_token: str | None,
    all_pages: bool,
    count_only: bool,
    source: str,
) -> None:
    """Documents newest first, by time range, customer, status and type."""
    query = Query(
        types=type_names or tuple(sorted(TYPES)),
        customer=customer,
        status=status,
        since=keys.parse_time(since) if since else None,
        until=keys.parse_time(until) if until else None,
        limit=limit or settings.query.default_limit,
    )
    reader = Engine.build(settings).reader
    if count_only:
        if page_token or all_pages:
            raise click.UsageError("--count takes no --page-token or --all")
        total, counted = reader.count(query, source)
        emit(
            {"total": total, "source": counted},
            fmt,
            lambda d: console().print(f"{d['total']} documents (source: {d['source']})"),
        )
        return
    page = reader.query(query, page_token, source)
    data = page.as_dict()
    while all_pages and page.next_page_token:
        page = reader.query(query, page.next_page_token, source)
        data["items"].extend(page.items)
        data["source"] = "s3" if "s3" in (data["source"], page.source) else "cache"
    data["next_page_token"] = page.next_page_token

    def text(d: dict[str, Any]) -> None:
        rows = [
            [
                i.get("modified_at"),
                i.get("object_type"),
                i.get("id"),
                i.get("status"),
                ",".join(i.get("customer_codes", [])),
                i.get("title", "")[:40],
            ]
            for i in d["items"]
        ]
        table(
            f"{len(rows)} documents (source: {d['source']})",
            ["modified_at", "type", "id", "status", "customers", "title"],
            rows,
        )
        if d["next_page_token"]:
            console().print(f"next page: --page-token {d['next_page_token']}")

    emit(data, fmt, text)


# -- backfill ---------------------------------------------------------------------------------

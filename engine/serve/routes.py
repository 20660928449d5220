"""`/v1`: documents (get, query, put, delete) and reconcile, over the one shared Engine.

Handlers are plain functions run in the server's thread pool (the engine is synchronous
boto3); each is a thin mapping of HTTP onto the library: the reader (cache, S3 on a miss or
while DynamoDB is down), the write pipeline (If-Match → expected_version), the reconciler.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine import keys
from engine.app import Engine
from engine.documents import ID_PATTERN, TYPES, BaseDocument, doc_type, parse_document
from engine.exceptions import (
    CacheUnavailableError,
    InvalidDocumentError,
    InvalidTimeError,
    NotFoundError,
    PreconditionFailedError,
    WriteConflictError,
)
from engine.reader import Query as ReaderQuery
from engine.serve.reconcile_runs import ReconcileRuns
from reconciler.schedule import reconcile_lock, run_and_save

SOURCE_HEADER = "X-Docsync-Source"  # cache | s3: where the answer came from
CACHE_HEADER = "X-Docsync-Cache"  # gets: l1 | hit | miss | bypass | off; query pages: l1
FUTURE_SLACK = timedelta(days=1)  # `until` may not be later than now + this
_VERSION_RE = re.compile(r'^(?:W/)?"?([0-9]{1,18})"?$')


class WriteResponse(BaseModel):
    id: str
    type: str
    etag: str = Field(description="S3's ETag (MD5 of the stored body)")
    version: int | None = Field(description="docsync version; send it back in If-Match")
    dry_run: bool = False


class DeleteResponse(BaseModel):
    id: str
    type: str
    deleted: bool
    already_absent: bool = Field(
        False, description="S3 no longer held it: a retried delete succeeds (200) with this"
    )
    dry_run: bool = False


class CountResponse(BaseModel):
    total: int
    source: Literal["cache", "s3"]


class QueryPageResponse(BaseModel):
    items: list[dict[str, Any]]
    next_page_token: str | None
    source: Literal["cache", "s3"]


class ReconcileRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["report", "repair"] = "report"
    types: list[str] | None = Field(None, description="document types (default: all)")
    wait: bool = Field(
        True,
        description="false: start the run in the background and answer 202 at once, with"
        " a Location to poll (a large bucket outlasts a load balancer's idle timeout)",
    )

    @field_validator("types")
    @classmethod
    def _known(cls, value: list[str] | None) -> list[str] | None:
        unknown = [t for t in value or [] if t not in TYPES]
        if unknown:
            raise ValueError(f"unknown document type(s) {unknown} (known: {sorted(TYPES)})")
        return value


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {
        401: "missing or invalid API key",
        404: "no such document",
        409: "a concurrent write is in flight, or another reconcile run holds the lock",
        412: "If-Match / If-None-Match does not hold",
        413: "request body too large",
        422: "invalid input; `fields` names what is wrong",
        429: "rate limit; see Retry-After",
        503: "AWS unavailable; see Retry-After",
    }
    return {code: {"description": text[code]} for code in codes}


def expected_version(if_match: str | None, if_none_match: str | None) -> int | None:
    """`If-Match: "3"` → 3; `If-None-Match: *` → 0 (create only); neither → None."""
    if if_none_match is not None:
        if if_none_match.strip() != "*" or if_match is not None:
            raise InvalidDocumentError(
                "If-None-Match: only `*` (create only) is supported, without If-Match",
                ["if-none-match"],
            )
        return 0
    if if_match is None:
        return None
    match = _VERSION_RE.match(if_match.strip())
    if match is None:
        raise InvalidDocumentError(
            'If-Match must be a document version, e.g. "3" (the ETag of a GET or PUT)', ["if-match"]
        )
    return int(match.group(1))


def _matches(if_none_match: str, version: int) -> bool:
    """RFC 9110 weak comparison of an If-None-Match list (or `*`) against a version."""
    for raw in if_none_match.split(","):
        tag = raw.strip()
        match = _VERSION_RE.match(tag)
        if tag == "*" or (match is not None and int(match.group(1)) == version):
            return True
    return False


def _time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return keys.parse_time(value)
    except InvalidTimeError as exc:
        raise InvalidTimeError(f"{name}: {exc}", [name]) from None


def _actor(request: Request) -> str | None:
    """Who writes, for history: the API key's fingerprint (never the key itself)."""
    key_id = getattr(request.state, "key_id", None)
    return f"apikey:{key_id}" if key_id else None


def document_router(engine: Engine) -> APIRouter:
    settings = engine.settings
    router = APIRouter(prefix="/v1")
    runs = ReconcileRuns()
    type_names = sorted(TYPES)

    # Parameters whose schema depends on the settings or the registered types are declared
    # as defaults (evaluated here), not in annotations (strings, under `from __future__`).
    def type_param() -> Any:
        return Path(
            alias="type", description="document type", json_schema_extra={"enum": type_names}
        )

    def id_param() -> Any:
        return Path(alias="id", pattern=ID_PATTERN, description="document id")

    def precondition_holds(type_name: str, doc_id: str, expected: int) -> bool:
        try:
            entry = engine.cache.get(type_name, doc_id)
        except CacheUnavailableError:
            return True  # cannot tell: report the conflict as such
        live = entry is not None and entry.state == "live"
        if expected == 0:
            return not live
        return live and entry is not None and entry.version == expected

    def conflict(
        exc: WriteConflictError, type_name: str, doc_id: str, expected: int | None
    ) -> None:
        if expected is not None and not precondition_holds(type_name, doc_id, expected):
            raise PreconditionFailedError(str(exc), exc.current_version) from exc

    @router.post(
        "/reconcile",
        tags=["reconcile"],
        summary="Compare S3 with the cache; report drift, or repair it",
        responses={
            202: {"description": "started (wait=false): poll the Location header's URL"},
            **_errors(401, 409, 413, 422, 429, 503),
        },
    )
    def reconcile(body: ReconcileRequest) -> Any:
        lock = reconcile_lock(engine)
        busy = "another reconcile run is in progress (lease held)"

        def run_locked() -> dict[str, Any]:
            saved = run_and_save(engine, body.mode, body.types, lock)
            if saved is None:
                raise WriteConflictError(busy)
            result, where = saved
            return result.as_dict() | {"report": where}

        if body.wait:
            return run_locked()
        if not lock.try_acquire():  # refused now, not in the background; the run renews it
            raise WriteConflictError(busy)
        status = runs.start(body.mode, run_locked)
        href = f"{router.prefix}/reconcile/{status['run_id']}"
        return JSONResponse(status | {"href": href}, status_code=202, headers={"Location": href})

    @router.get(
        "/reconcile/{run_id}",
        tags=["reconcile"],
        summary="A reconcile run started with wait=false: running, done (with its result), failed",
        responses=_errors(401, 404, 422, 429),
    )
    def reconcile_run(
        run_id: Annotated[str, Path(pattern=r"^[0-9a-f]{16}$", description="from the 202")],
    ) -> dict[str, Any]:
        status = runs.get(run_id)
        if status is None:
            raise NotFoundError(
                f"reconcile run {run_id!r} is unknown here: runs are tracked by the replica"
                " that started them (the last 50); every run's report is listed by"
                " `docsync reconcile --history`"
            )
        return status

    @router.get(
        "/{type}",
        tags=["documents"],
        summary="Query documents, newest first",
        response_model=None,
        responses={
            200: {"model": QueryPageResponse | CountResponse},
            **_errors(401, 422, 429, 503),
        },
    )
    def query(
        request: Request,
        type_name: str = type_param(),
        customer: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
        status: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
        since: Annotated[
            str | None, Query(max_length=64, description="ISO-8601, or relative: 90d, 12h, 30m")
        ] = None,
        until: Annotated[str | None, Query(max_length=64)] = None,
        limit: int = Query(settings.query.default_limit, ge=1, le=settings.query.page_max),
        page_token: Annotated[str | None, Query(max_length=4096)] = None,
        source: Annotated[
            Literal["auto", "cache", "s3"],
            Query(description="auto: the cache, S3 while DynamoDB is unavailable"),
        ] = "auto",
        count: Annotated[
            bool, Query(description='true: answer {"total": N} for the filters and range')
        ] = False,
    ) -> JSONResponse:
        doc_type(type_name)
        since_ts, until_ts = _time(since, "since"), _time(until, "until")
        if until_ts is not None and until_ts > datetime.now(UTC) + FUTURE_SLACK:
            raise InvalidTimeError("until: more than a day in the future", ["until"])
        query = ReaderQuery(
            types=(type_name,),
            customer=customer,
            status=status,
            since=since_ts,
            until=until_ts,
            limit=limit,
        )
        if count:
            total, counted = engine.reader.count(query, source)
            request.state.source = counted
            return JSONResponse(
                {"total": total, "source": counted}, headers={SOURCE_HEADER: counted}
            )
        page = engine.reader.query(query, page_token, source)
        request.state.source = page.source
        headers: dict[str, str] = {SOURCE_HEADER: page.source}
        if page.l1:
            headers[CACHE_HEADER] = "l1"
        return JSONResponse(page.as_dict(), headers=headers)

    @router.get(
        "/{type}/{id}/history",
        tags=["documents"],
        summary="A document's history: every committed change, newest first",
        responses=_errors(401, 404, 422, 429, 503),
    )
    def document_history(
        type_name: str = type_param(),
        doc_id: str = id_param(),
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Any:
        from engine.store.history import HistoryStore
        from engine.streams.history import public

        doc_type(type_name)
        store = HistoryStore(engine.clients.dynamodb, settings.history_table)
        entries = store.list(type_name, doc_id, limit)
        if not entries:
            raise NotFoundError(f"no history for {type_name} {doc_id!r}")
        return {"type": type_name, "id": doc_id, "items": [public(e) for e in entries]}

    @router.get(
        "/{type}/{id}",
        tags=["documents"],
        summary="Read one document (cache, or S3 on a miss or while DynamoDB is down)",
        response_model=None,
        responses={
            200: {"content": {"application/json": {"schema": BaseDocument.model_json_schema()}}},
            304: {"description": "Not Modified: the If-None-Match version is still current"},
            **_errors(401, 404, 422, 429, 503),
        },
    )
    def get_document(
        request: Request,
        type_name: str = type_param(),
        doc_id: str = id_param(),
        if_none_match: Annotated[
            str | None, Header(description="the ETag of a copy you hold: 304 if still current")
        ] = None,
    ) -> Response:
        result = engine.reader.get(type_name, doc_id)
        request.state.source = result.source
        headers = {SOURCE_HEADER: result.source, CACHE_HEADER: result.cache}
        if result.version is not None:  # cache hits; S3 reads carry no docsync version
            headers["ETag"] = f'"{result.version}"'
            if if_none_match is not None and _matches(if_none_match, result.version):
                return Response(status_code=304, headers=headers)
        return JSONResponse(result.document, headers=headers)

    def write(
        type_name: str, doc_id: str, body: bytes, expected: int | None, actor: str | None
    ) -> dict[str, Any]:
        doc = parse_document(body, type_name)
        if doc.id != doc_id:
            raise InvalidDocumentError(
                f"field 'id': {doc.id!r} does not match the path's id {doc_id!r}", ["id"]
            )
        try:
            result = engine.pipeline.put(doc, expected, actor)
        except WriteConflictError as exc:
            conflict(exc, type_name, doc_id, expected)
            raise
        return result.as_dict() | {"dry_run": result.dry_run}

    @router.put(
        "/{type}/{id}",
        tags=["documents"],
        summary="Write a document through the write pipeline",
        response_model=WriteResponse,
        responses=_errors(401, 409, 412, 413, 422, 429, 503),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": BaseDocument.model_json_schema()}},
            }
        },
    )
    async def put_document(
        request: Request,
        type_name: str = type_param(),
        doc_id: str = id_param(),
        if_match: Annotated[str | None, Header(description='a version, e.g. "3"')] = None,
        if_none_match: Annotated[str | None, Header(description="`*`: create only")] = None,
    ) -> Any:
        expected = expected_version(if_match, if_none_match)
        doc_type(type_name)
        body = await request.body()
        actor = _actor(request)
        result = await run_in_threadpool(write, type_name, doc_id, body, expected, actor)
        version = result.get("version")
        headers = {"ETag": f'"{version}"'} if version is not None else None
        return JSONResponse(result, headers=headers)

    @router.delete(
        "/{type}/{id}",
        tags=["documents"],
        summary="Delete a document from S3, leaving a tombstone in the cache",
        response_model=DeleteResponse,
        responses=_errors(401, 404, 409, 412, 422, 429, 503),
    )
    def delete_document(
        request: Request,
        type_name: str = type_param(),
        doc_id: str = id_param(),
        if_match: Annotated[str | None, Header(description='a version, e.g. "3"')] = None,
    ) -> Any:
        expected = expected_version(if_match, None)
        try:
            result = engine.pipeline.delete(type_name, doc_id, expected, _actor(request))
        except WriteConflictError as exc:
            conflict(exc, type_name, doc_id, expected)
            raise
        return result.as_dict() | {"dry_run": result.dry_run}

    return router

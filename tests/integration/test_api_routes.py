"""The HTTP API end to end: a real uvicorn server on a loopback port (in a thread), httpx as
the client, the engine on the moto server over HTTP."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from loguru import logger

from engine import keys
from engine.app import Engine
from engine.documents import parse_document
from engine.exceptions import ConfigError
from engine.pipeline import WritePipeline
from engine.sample import sample_documents
from engine.serve.apikeys import ApiKeys
from engine.serve.app import create_app
from engine.serve.health import Readiness
from engine.serve.server import HttpServer
from engine.settings import Settings
from reconciler.lock import LeaseLock
from reconciler.schedule import LOCK_NAME
from tests.conftest import make_settings

KEY = "test-key-0123456789abcdef"
OTHER_KEY = "other-key-0123456789abcdef"
NOW = datetime.now(UTC)


@dataclass
class Api:
    url: str
    engine: Engine

    def client(self, key: str | None = KEY) -> httpx.Client:
        headers = {"x-api-key": key} if key is not None else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@contextmanager
def running_api(
    engine: Engine, readiness: Readiness | None = None, keys_: tuple[str, ...] = (KEY, OTHER_KEY)
) -> Iterator[Api]:
    """create_app + uvicorn on 127.0.0.1, a free port, in a thread; stopped afterwards."""
    app = create_app(engine, readiness, ApiKeys.of(list(keys_)))
    with HttpServer(app, port=0, graceful_timeout_s=5) as server:
        yield Api(server.url, engine)


@pytest.fixture
def api(engine: Engine) -> Iterator[Api]:
    with running_api(engine) as running:
        yield running


def doc(doc_id: str = "CHG-1", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": doc_id,
        "object_type": "change",
        "title": "Kernel patching",
        "customer_codes": ["acme", "globex"],
        "status": "approved",
        "created_at": keys.iso(NOW - timedelta(days=20)),
        "modified_at": keys.iso(NOW - timedelta(hours=1)),
        "extra": {"kept": True},
    }
    return base | fields


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- every route ------------------------------------------------------------------------------


def test_put_get_query_delete_round_trip(api: Api) -> None:
    engine = api.engine
    with api.client() as http:
        put = http.put("/v1/change/CHG-1", json=doc())
        assert put.status_code == 200, put.text
        body = put.json()
        assert body["version"] == 1 and body["id"] == "CHG-1" and body["type"] == "change"
        assert put.headers["etag"] == '"1"'
        stored = engine.objects.get("changes/CHG-1.json")
        assert stored.info.etag == body["etag"]
        assert json.loads(stored.body) == doc()  # extra fields kept as written

        got = http.get("/v1/change/CHG-1")
        assert got.status_code == 200 and got.json() == doc()
        assert got.headers["x-docsync-source"] == "cache"
        assert got.headers["x-docsync-cache"] == "hit"

        page = http.get("/v1/change", params={"customer": "globex"})
        assert page.status_code == 200
        assert [i["id"] for i in page.json()["items"]] == ["CHG-1"]
        assert page.json()["source"] == "cache" and page.json()["next_page_token"] is None
        assert page.headers["x-docsync-source"] == "cache"
        assert http.get("/v1/announcement").json()["items"] == []

        gone = http.delete("/v1/change/CHG-1")
        assert gone.status_code == 200
        assert gone.json() == {
            "id": "CHG-1",
            "type": "change",
            "deleted": True,
            "already_absent": False,
            "dry_run": False,
        }
        assert engine.objects.head("changes/CHG-1.json") is None
        missing = http.get("/v1/change/CHG-1")
        assert missing.status_code == 404 and "does not exist" in missing.json()["error"]
        again = http.delete("/v1/change/CHG-1")  # a retried delete succeeds: 200
        assert again.status_code == 200
        assert again.json() | {"dry_run": False} == {
            "id": "CHG-1",
            "type": "change",
            "deleted": False,
            "already_absent": True,
            "dry_run": False,
        }
        assert http.get("/v1/change").json()["items"] == []


def test_get_etag_is_the_version_for_conditional_gets_and_if_match(api: Api) -> None:
    """GET → ETag "1"; If-None-Match "1" → 304 with no body; PUT If-Match "1" → v2; the old
    ETag no longer matches. A read served from S3 (a miss) has no version, so no ETag."""
    api.engine.objects.put("changes/CHG-9.json", parse_document(doc("CHG-9")).body)
    with api.client() as http:
        miss = http.get("/v1/change/CHG-9")
        assert miss.status_code == 200 and miss.headers["x-docsync-cache"] == "miss"
        assert "etag" not in miss.headers
        got = http.get("/v1/change/CHG-9")  # backfilled: now a hit
        assert got.headers["x-docsync-cache"] == "hit" and got.headers["etag"] == '"1"'
        same = http.get("/v1/change/CHG-9", headers={"If-None-Match": got.headers["etag"]})
        assert same.status_code == 304 and same.content == b"" and same.headers["etag"] == '"1"'
        listed = http.get("/v1/change/CHG-9", headers={"If-None-Match": 'W/"7", W/"1"'})
        assert listed.status_code == 304
        put = http.put(
            "/v1/change/CHG-9", json=doc("CHG-9", title="v2"), headers={"If-Match": '"1"'}
        )
        assert put.status_code == 200 and put.headers["etag"] == '"2"'
        changed = http.get("/v1/change/CHG-9", headers={"If-None-Match": '"1"'})
        assert changed.status_code == 200 and changed.json()["title"] == "v2"
        assert changed.headers["etag"] == '"2"'


def test_a_miss_is_read_from_s3_and_backfilled(api: Api) -> None:
    d = parse_document(doc("CHG-S3"))
    api.engine.objects.put("changes/CHG-S3.json", d.body)  # another application wrote it
    with api.client() as http:
        first = http.get("/v1/change/CHG-S3")
        assert first.status_code == 200 and first.json()["id"] == "CHG-S3"
        assert (first.headers["x-docsync-source"], first.headers["x-docsync-cache"]) == (
            "s3",
            "miss",
        )
        second = http.get("/v1/change/CHG-S3")
        assert second.headers["x-docsync-cache"] == "hit"


def test_health_readiness_docs_and_metrics(api: Api) -> None:
    with api.client(key=None) as anonymous, api.client() as http:
        assert anonymous.get("/healthz").json() == {"status": "ok"}
        ready = anonymous.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["aws"] == {"s3": "ok", "dynamodb": "ok", "sqs": "ok"}
        assert "swagger" in anonymous.get("/docs").text.lower()
        schema = anonymous.get("/openapi.json").json()
        assert {"/v1/{type}/{id}", "/v1/{type}", "/v1/reconcile"} <= set(schema["paths"])
        assert "APIKeyHeader" in schema["components"]["securitySchemes"]

        http.put("/v1/change/CHG-M", json=doc("CHG-M"))
        http.get("/v1/change/CHG-M")
        http.get("/v1/change/NOPE-404")
        text = http.get("/metrics").text
        assert 'docsync_http_requests_total{method="GET",route="/v1/{type}/{id}",status="200"}' in (
            text
        )
        assert 'route="/v1/{type}/{id}",status="404"' in text
        assert 'docsync_http_request_seconds_bucket{le="0.0025",method="PUT"' in text
        assert "docsync_reads_total" in text  # the engine's own metrics, same registry
        assert "CHG-M" not in text and "NOPE-404" not in text  # templates, never raw paths


# -- auth and rate limits ---------------------------------------------------------------------

PROTECTED = [
    ("GET", "/v1/change/CHG-1", None),
    ("GET", "/v1/change", None),
    ("PUT", "/v1/change/CHG-1", doc()),
    ("DELETE", "/v1/change/CHG-1", None),
    ("POST", "/v1/reconcile", {"mode": "report"}),
    ("GET", "/metrics", None),
]


def test_every_route_but_health_needs_a_valid_key(api: Api) -> None:
    lines: list[str] = []

    def capture(message: Any) -> None:
        lines.append(str(message) + json.dumps(message.record["extra"], default=str))

    sink = logger.add(capture, level="DEBUG")
    try:
        with api.client(key=None) as missing, api.client("wrong-key-0123456789abcdef") as wrong:
            for method, path, body in PROTECTED:
                no_key = missing.request(method, path, json=body)
                assert no_key.status_code == 401, (method, path, no_key.text)
                assert "missing API key" in no_key.json()["error"]
                bad = wrong.request(method, path, json=body)
                assert bad.status_code == 401 and "invalid API key" in bad.json()["error"]
            assert api.engine.objects.head("changes/CHG-1.json") is None  # nothing written
        for key in (KEY, OTHER_KEY):
            with api.client(key) as right:
                for method, path, body in PROTECTED:
                    answer = right.request(method, path, json=body)
                    assert answer.status_code not in (401, 403, 429), (method, path, answer.text)
    finally:
        logger.remove(sink)
    text = "\n".join(lines)
    assert "op" in text and "key-" in text  # requests are logged, by key fingerprint
    for secret in (KEY, OTHER_KEY, "wrong-key-0123456789abcdef"):
        assert secret not in text


def test_rate_limit_per_key_answers_429_then_recovers(settings: Settings) -> None:
    limited = Engine.build(
        settings.replace({"serve.rate_limit_per_minute": 60, "serve.rate_limit_burst": 3})
    )
    with running_api(limited) as api, api.client() as http, api.client(OTHER_KEY) as other:
        statuses = [http.get("/v1/change").status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        refused = http.get("/v1/change")
        assert refused.status_code == 429
        wait = int(refused.headers["retry-after"])
        assert 1 <= wait <= 2
        assert other.get("/v1/change").status_code == 200  # per key: the other key is not held
        time.sleep(wait)
        assert http.get("/v1/change").status_code == 200


def test_api_keys_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "keys"
    path.write_text("# ops team\nfile-key-0123456789abcdef\n\n")
    monkeypatch.setenv("DOCSYNC_SERVE_API_KEYS", f"{KEY}, {OTHER_KEY}")
    monkeypatch.setenv("DOCSYNC_SERVE_API_KEYS_FILE", str(path))
    loaded = ApiKeys.from_settings(make_settings("http://127.0.0.1:1"))
    assert len(loaded.digests) == 3
    assert loaded.identify("file-key-0123456789abcdef") is not None
    assert loaded.identify(KEY) != loaded.identify(OTHER_KEY)
    assert loaded.identify("file-key-0123456789abcdeX") is None
    assert loaded.identify("") is None and loaded.identify(None) is None
    monkeypatch.setenv("DOCSYNC_SERVE_API_KEYS", "short")
    with pytest.raises(ConfigError, match="shorter than 16"):
        ApiKeys.from_settings(make_settings("http://127.0.0.1:1"))
    monkeypatch.delenv("DOCSYNC_SERVE_API_KEYS")
    monkeypatch.setenv("DOCSYNC_SERVE_API_KEYS_FILE", str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match="cannot read"):
        ApiKeys.from_settings(make_settings("http://127.0.0.1:1"))
    monkeypatch.delenv("DOCSYNC_SERVE_API_KEYS_FILE")
    with pytest.raises(ConfigError, match="at least one API key"):
        ApiKeys.from_settings(make_settings("http://127.0.0.1:1"))


# -- validation, conflicts, limits ------------------------------------------------------------


def test_validation_errors_are_422_and_name_the_fields(api: Api) -> None:
    cases: list[tuple[str, str, dict[str, Any], list[str]]] = [
        (
            "PUT",
            "/v1/change/CHG-1",
            {"json": {k: v for k, v in doc().items() if k != "title"}},
            ["title"],
        ),
        ("PUT", "/v1/change/CHG-1", {"json": doc("CHG-2")}, ["id"]),
        ("PUT", "/v1/change/CHG-1", {"json": doc(customer_codes=["a#b"])}, ["customer_codes"]),
        ("PUT", "/v1/change/CHG-1", {"json": doc(object_type="announcement")}, ["object_type"]),
        ("PUT", "/v1/change/CHG-1", {"content": b"{not json"}, ["<body>"]),
        ("PUT", "/v1/change/CHG-1", {"json": doc(), "headers": {"if-match": "v1"}}, ["if-match"]),
        ("PUT", "/v1/change/bad%20id", {"json": doc()}, ["id"]),
        ("PUT", "/v1/memo/CHG-1", {"json": doc()}, ["type"]),
        ("GET", "/v1/memo/CHG-1", {}, ["type"]),
        ("GET", "/v1/memo", {}, ["type"]),
        ("GET", "/v1/change", {"params": {"limit": 0}}, ["limit"]),
        ("GET", "/v1/change", {"params": {"limit": 100_000}}, ["limit"]),
        ("GET", "/v1/change", {"params": {"since": "yesterday"}}, ["since"]),
        ("GET", "/v1/change", {"params": {"until": "9999-01-01T00:00:00Z"}}, ["until"]),
        ("GET", "/v1/change", {"params": {"since": "400d"}}, ["since"]),  # outside the window
        ("GET", "/v1/change", {"params": {"page_token": "forged.token"}}, ["page_token"]),
        ("GET", "/v1/change", {"params": {"source": "disk"}}, ["source"]),
        ("POST", "/v1/reconcile", {"json": {"mode": "fix-it"}}, ["mode"]),
        ("POST", "/v1/reconcile", {"json": {"types": ["memo"]}}, ["types"]),
        ("POST", "/v1/reconcile", {"json": {"mode": "report", "extra": 1}}, ["extra"]),
    ]
    with api.client() as http:
        for method, path, kwargs, fields in cases:
            answer = http.request(method, path, **kwargs)
            assert answer.status_code == 422, (method, path, kwargs, answer.text)
            body = answer.json()
            assert set(fields) <= set(body["fields"]), (path, kwargs, body)
            assert body["status"] == 422 and body["error"]
    assert api.engine.objects.head("changes/CHG-1.json") is None


def test_if_match_conflicts_are_412_and_in_flight_writes_409(api: Api) -> None:
    engine = api.engine
    with api.client() as http:
        assert http.put("/v1/change/CHG-1", json=doc()).json()["version"] == 1
        v2 = http.put("/v1/change/CHG-1", json=doc(title="v2"), headers={"if-match": '"1"'})
        assert v2.status_code == 200 and v2.json()["version"] == 2
        stale = http.put("/v1/change/CHG-1", json=doc(title="v3"), headers={"if-match": '"1"'})
        assert stale.status_code == 412 and stale.json()["current_version"] == 2
        assert json.loads(engine.objects.get("changes/CHG-1.json").body)["title"] == "v2"
        exists = http.put("/v1/change/CHG-1", json=doc(title="x"), headers={"if-none-match": "*"})
        assert exists.status_code == 412
        created = http.put("/v1/change/CHG-9", json=doc("CHG-9"), headers={"if-none-match": "*"})
        assert created.status_code == 200 and created.json()["version"] == 1
        assert http.delete("/v1/change/CHG-1", headers={"if-match": '"1"'}).status_code == 412
        assert http.delete("/v1/change/NEW-1", headers={"if-match": "1"}).status_code == 412
        ok = http.delete("/v1/change/CHG-1", headers={"if-match": 'W/"2"'})
        assert ok.status_code == 200 and ok.json()["deleted"] is True

    # Another writer's fresh intent is in flight: the precondition holds, the write conflicts.
    engine.pipeline = WritePipeline(engine.settings, engine.cache, engine.objects, 0.2)
    engine.cache.begin(
        "change",
        "CHG-9",
        tx="someone-else",
        etag="0" * 32,
        op="put",
        stale_before=NOW - timedelta(days=1),
        expected_version=None,
    )
    with running_api(engine) as second, second.client() as http:
        busy = http.put("/v1/change/CHG-9", json=doc("CHG-9", title="b"), headers={"if-match": "1"})
        assert busy.status_code == 409, busy.text
        assert "in flight" in busy.json()["error"]
        assert http.put("/v1/change/CHG-9", json=doc("CHG-9", title="c")).status_code == 409


def test_request_body_limit_is_413(settings: Settings) -> None:
    small = Engine.build(settings.replace({"serve.max_body_bytes": 2048}))
    big = doc(notes="x" * 4000)
    with running_api(small) as api, api.client() as http:
        assert http.put("/v1/change/CHG-1", json=big).status_code == 413

        def chunks() -> Iterator[bytes]:  # no Content-Length: caught while streaming
            data = json.dumps(big).encode()
            for i in range(0, len(data), 512):
                yield data[i : i + 512]

        streamed = http.put("/v1/change/CHG-1", content=chunks())
        assert streamed.status_code == 413
        assert http.put("/v1/change/CHG-1", json=doc()).status_code == 200
    assert small.objects.get("changes/CHG-1.json").body == parse_document(doc()).body


def test_cors_follows_the_settings(settings: Settings) -> None:
    engine = Engine.build(settings.replace({"serve.cors_origins": ["https://app.example"]}))
    with running_api(engine) as api, api.client() as http:
        preflight = http.options(
            "/v1/change/CHG-1",
            headers={
                "origin": "https://app.example",
                "access-control-request-method": "PUT",
                "access-control-request-headers": "x-api-key,if-match,content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        simple = http.get("/v1/change", headers={"origin": "https://app.example"})
        assert simple.headers["access-control-allow-origin"] == "https://app.example"
        assert "x-docsync-source" in simple.headers["access-control-expose-headers"].lower()
        other = http.get("/v1/change", headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_dry_run_writes_nothing(settings: Settings) -> None:
    dry = Engine.build(settings.model_copy(update={"dry_run": True}))
    with running_api(dry) as api, api.client() as http:
        answer = http.put("/v1/change/CHG-1", json=doc())
        assert answer.status_code == 200 and answer.json()["dry_run"] is True
    assert dry.objects.head("changes/CHG-1.json") is None


# -- pagination -------------------------------------------------------------------------------


def test_pagination_walks_the_corpus_without_duplicates_or_gaps(api: Api) -> None:
    corpus = [parse_document(d) for d in sample_documents(150, seed=5, now=NOW)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(api.engine.pipeline.put, corpus))
    since = NOW - timedelta(days=60)

    def expected(type_name: str, customer: str | None) -> list[str]:
        rows = [
            d
            for d in corpus
            if d.type == type_name
            and d.modified_at >= since
            and (customer is None or customer in d.customer_codes)
        ]
        rows.sort(key=lambda d: keys.time_sort_key(d.modified_at, d.id), reverse=True)
        return [d.id for d in rows]

    with api.client() as http:
        for type_name, customer, limit in (
            ("change", None, 7),
            ("change", "acme", 3),
            ("announcement", None, 5),
        ):
            params: dict[str, Any] = {"since": keys.iso(since), "limit": limit}
            if customer:
                params["customer"] = customer
            seen: list[str] = []
            token: str | None = None
            pages = 0
            while True:
                answer = http.get(f"/v1/{type_name}", params=params | {"page_token": token})
                assert answer.status_code == 200, answer.text
                page = answer.json()
                assert len(page["items"]) <= limit
                seen += [item["id"] for item in page["items"]]
                pages += 1
                token = page["next_page_token"]
                if token is None:
                    break
                assert len(page["items"]) == limit
            want = expected(type_name, customer)
            assert len(want) > 2 * limit  # several pages
            assert len(seen) == len(set(seen))  # no duplicates
            assert seen == want  # nothing missing, newest first
            assert pages == -(-len(want) // limit)
        first = http.get("/v1/change", params={"limit": 2}).json()
        foreign = http.get(
            "/v1/change",
            params={"limit": 2, "customer": "acme", "page_token": first["next_page_token"]},
        )
        assert foreign.status_code == 422 and foreign.json()["fields"] == ["page_token"]


# -- S3 fallback ------------------------------------------------------------------------------


@contextmanager
def dynamodb_unreachable(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """A second engine whose DynamoDB endpoint is a closed port (S3 and SQS still work).

    boto3 reads AWS_ENDPOINT_URL_DYNAMODB when a client is built: every client built inside
    the block (the engine's, the readiness probe's) gets the dead endpoint."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{free_port()}")
    try:
        yield Engine.build(settings.replace({"breaker.fail_max": 2}))
    finally:
        monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB")


def test_reads_fall_back_to_s3_when_dynamodb_is_unreachable(
    api: Api, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with api.client() as http:  # the first app's clients are built here, on moto
        for n in range(3):
            assert http.put(f"/v1/change/CHG-{n}", json=doc(f"CHG-{n}")).status_code == 200
        assert http.get("/readyz").json()["aws"]["dynamodb"] == "ok"
    with dynamodb_unreachable(settings, monkeypatch) as broken:
        readiness = Readiness(broken.settings, parts=dict)
        with running_api(broken, readiness) as down, down.client() as http:
            for _ in range(3):  # before and after the circuit breaker opens
                got = http.get("/v1/change/CHG-1")
                assert got.status_code == 200, got.text
                assert got.json() == doc("CHG-1")
                assert got.headers["x-docsync-source"] == "s3"
                assert got.headers["x-docsync-cache"] == "bypass"
            assert http.get("/v1/change/CHG-404").status_code == 404
            page = http.get("/v1/change", params={"limit": 2})
            assert page.status_code == 200, page.text
            assert page.headers["x-docsync-source"] == "s3"
            assert page.json()["source"] == "s3" and len(page.json()["items"]) == 2
            rest = http.get(
                "/v1/change", params={"limit": 2, "page_token": page.json()["next_page_token"]}
            ).json()
            ids = [i["id"] for i in page.json()["items"] + rest["items"]]
            assert sorted(ids) == ["CHG-0", "CHG-1", "CHG-2"]

            refused = http.put("/v1/change/CHG-1", json=doc("CHG-1", title="while down"))
            assert refused.status_code == 503 and refused.headers["retry-after"]
            ready = http.get("/readyz")
            assert ready.status_code == 200, ready.text  # degraded: reads still answered
            assert ready.json()["status"] == "degraded"
            assert ready.json()["aws"]["dynamodb"].startswith("unreachable")
    assert (
        json.loads(api.engine.objects.get("changes/CHG-1.json").body)["title"] == "Kernel patching"
    )


# -- reconcile --------------------------------------------------------------------------------


def with_one_missing(api: Api, http: httpx.Client, count: int, missing: int) -> None:
    """`count` documents written over HTTP, then the cache entry of one of them deleted."""
    for n in range(count):
        http.put(f"/v1/change/CHG-{n}", json=doc(f"CHG-{n}"))
    api.engine.clients.dynamodb.delete_item(
        TableName=api.engine.settings.table, Key={"pk": {"S": f"change#CHG-{missing}"}}
    )


def test_reconcile_reports_and_repairs_over_http(api: Api) -> None:
    engine = api.engine
    with api.client() as http:
        with_one_missing(api, http, 4, missing=2)
        report = http.post("/v1/reconcile", json={})
        assert report.status_code == 200, report.text
        data = report.json()
        assert data["mode"] == "report" and data["counts"]["missing"] == 1
        assert data["counts"]["in_sync"] == 3 and data["report"]["s3"].startswith("s3://")
        repair = http.post("/v1/reconcile", json={"mode": "repair", "types": ["change"]}).json()
        assert repair["repaired"]["missing"] == 1 and repair["remaining"] == 0
        assert http.get("/v1/change/CHG-2").headers["x-docsync-cache"] == "hit"

        other = LeaseLock(engine.clients.dynamodb, engine.settings.leases_table, LOCK_NAME, 60)
        assert other.try_acquire()
        try:
            busy = http.post("/v1/reconcile", json={"mode": "repair"})
            assert busy.status_code == 409 and "in progress" in busy.json()["error"]
            busy = http.post("/v1/reconcile", json={"mode": "repair", "wait": False})
            assert busy.status_code == 409  # refused at once, not in the background
        finally:
            other.release()


def test_reconcile_without_waiting_answers_202_and_a_run_to_poll(api: Api) -> None:
    with api.client() as http:
        with_one_missing(api, http, 3, missing=1)
        started = http.post("/v1/reconcile", json={"mode": "repair", "wait": False})
        assert started.status_code == 202, started.text
        location = started.headers["location"]
        assert started.json()["status"] == "running" and location == started.json()["href"]
        deadline = time.monotonic() + 60
        while (run := http.get(location).json())["status"] == "running":
            assert time.monotonic() < deadline, run
            time.sleep(0.1)
        assert run["status"] == "done", run
        assert run["result"]["repaired"]["missing"] == 1 and run["result"]["remaining"] == 0
        assert run["result"]["report"]["s3"].startswith("s3://")
        assert http.get("/v1/change/CHG-1").headers["x-docsync-cache"] == "hit"
        # the lease went with the run: the next one may start
        assert http.post("/v1/reconcile", json={}).status_code == 200
        unknown = http.get("/v1/reconcile/0123456789abcdef")
        assert unknown.status_code == 404 and "--history" in unknown.json()["error"]
        assert http.get("/v1/reconcile/not-a-run").status_code == 422


def test_a_server_that_cannot_bind_fails_to_start(engine: Engine) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        app = create_app(engine, keys=ApiKeys.of([KEY]))
        with pytest.raises(RuntimeError, match="did not start"):
            HttpServer(app, port=port).start(timeout_s=5)


def test_count_answers_the_total_for_the_filters_and_range(api: Api) -> None:
    with api.client() as http:
        for n in range(5):
            customers = ["acme"] if n % 2 else ["acme", "globex"]
            status = "approved" if n < 3 else "draft"
            fields = {"customer_codes": customers, "status": status}
            assert http.put(f"/v1/change/CHG-{n}", json=doc(f"CHG-{n}", **fields)).is_success
        http.delete("/v1/change/CHG-0")

        def total(**params: str) -> int:
            response = http.get("/v1/change", params={"count": "true", **params})
            assert response.status_code == 200, response.text
            assert response.headers["x-docsync-source"] == "cache"
            assert set(response.json()) == {"total", "source"}
            return int(response.json()["total"])

        assert total() == 4
        assert total(customer="acme") == 4
        assert total(customer="globex") == 2  # CHG-2, CHG-4 (CHG-0 is deleted)
        assert total(customer="acme", status="draft") == 2
        assert total(status="approved") == 2
        assert total(customer="acme", since="1m") == 0

"""The demo's HTTP section: `docsync serve` (API + listener) in-process on the demo's moto
server and engine, and part of the workload driven through the API as an application would:
writes, cached reads, a paginated query, a stale If-Match, a delete, a reconcile report, the
metrics, then a graceful stop."""

from __future__ import annotations

import json
import secrets
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from rich.console import Console

from engine.app import Engine
from engine.sample import sample_documents
from engine.serve.apikeys import ApiKeys
from engine.serve.service import Service


def _wait_ready(service: Service, timeout_s: float = 30.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        url = service.api_url
        if url is not None:
            try:
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    return url
            except httpx.TransportError:
                pass
        time.sleep(0.05)
    raise RuntimeError(f"serve did not become ready: {service.supervisor.status()}")


def http_section(out: Console, engine: Engine, count: int = 24, seed: int = 17) -> dict[str, Any]:
    """Run serve's API in-process and drive `count` new documents through it; returns figures."""
    key = secrets.token_urlsafe(24)
    service = Service(
        engine, port=0, enabled={"api", "listener"}, api_keys=ApiKeys.of([key])
    ).start()
    docs = []
    for raw in sample_documents(count, seed):
        raw["id"] = raw["id"].replace("-", "-HTTP-", 1)
        docs.append(raw)
    out.print("\n[bold]serve[/]: the HTTP API and the listener in-process (`docsync serve`)")
    try:
        url = _wait_ready(service)
        with httpx.Client(base_url=url, headers={"x-api-key": key}, timeout=30) as http:
            figures = _drive(out, http, docs, url)
    finally:
        clean = service.stop()
    out.print(f"  SIGTERM path: stopped {'cleanly' if clean else 'NOT cleanly'}")
    return figures | {"stopped_cleanly": clean}


def _drive(
    out: Console, http: httpx.Client, docs: list[dict[str, Any]], url: str
) -> dict[str, Any]:
    def put(doc: dict[str, Any]) -> int:
        return http.put(f"/v1/{doc['object_type']}/{doc['id']}", json=doc).status_code

    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        puts = Counter(pool.map(put, docs))
    put_ms = (time.perf_counter() - started) * 1000
    out.print(
        f"  PUT  /v1/{{type}}/{{id}} × {len(docs)} (8 clients): {dict(puts)} in {put_ms:.0f} ms"
    )

    started = time.perf_counter()
    reads = [http.get(f"/v1/{d['object_type']}/{d['id']}") for d in docs]
    get_ms = (time.perf_counter() - started) * 1000
    caches = Counter(r.headers.get("x-docsync-cache") for r in reads)
    out.print(f"  GET  /v1/{{type}}/{{id}} × {len(reads)}: {dict(caches)} in {get_ms:.0f} ms")

    pages, items, token = 0, 0, None
    while True:
        params: dict[str, Any] = {"customer": "acme", "limit": 25}
        if token:
            params["page_token"] = token
        page = http.get("/v1/change", params=params).json()
        pages, items, token = pages + 1, items + len(page["items"]), page["next_page_token"]
        if not token:
            break
    out.print(f"  GET  /v1/change?customer=acme&limit=25: {items} documents in {pages} pages")

    first = docs[0]
    path = f"/v1/{first['object_type']}/{first['id']}"
    edited = http.put(path, json=first | {"title": "edited over HTTP"}, headers={"if-match": "1"})
    stale = http.put(path, json=first | {"title": "lost update"}, headers={"if-match": "1"})
    anonymous = httpx.get(f"{url}{path}", timeout=10).status_code
    out.print(
        f"  If-Match 1 → {edited.status_code} (version {edited.json().get('version')}); again →"
        f" {stale.status_code} (a lost update refused); no API key → {anonymous}"
    )
    deleted = http.delete(path).status_code
    after = http.get(path).status_code
    report = http.post("/v1/reconcile", json={"mode": "report"}).json()
    out.print(
        f"  DELETE {path} → {deleted}, then GET → {after}; POST /v1/reconcile: drift"
        f" {json.dumps({k: v for k, v in report['counts'].items() if k != 'in_sync'})},"
        f" in sync {report['counts']['in_sync']}"
    )
    metrics = http.get("/metrics").text
    requests = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("docsync_http_requests_total{")
    )
    ready = http.get("/readyz").json()
    out.print(
        f"  /metrics: {requests:.0f} HTTP requests counted by route and status;"
        f" /readyz: {ready['status']}, parts {sorted(ready['parts'])}"
    )
    return {
        "http_puts": dict(puts),
        "http_gets": dict(caches),
        "http_query_items": items,
        "http_query_pages": pages,
        "stale_if_match": stale.status_code,
        "drift": report["counts"],
    }

"""`docsync demo`: the main job end to end on an embedded moto server, with a readable summary."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from rich.console import Console
from rich.table import Table

from engine.app import Engine
from engine.aws import CallCounter
from engine.documents import Document, parse_document
from engine.exceptions import NotFoundError, QueryOutsideWindowError
from engine.infra import Infrastructure
from engine.keys import parse_time
from engine.local_moto import TEST_CREDENTIALS, EmbeddedMoto
from engine.logs import configure_logging
from engine.reader import Query
from engine.sample import sample_documents
from engine.serve.demo_http import http_section
from engine.settings import load_settings
from engine.store.queue import QueueStore

T = TypeVar("T")


def _timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = fn()
    return result, (time.perf_counter() - start) * 1000


def run_demo(count: int = 300, seed: int = 7) -> None:
    out = Console(highlight=False, width=110)
    configure_logging("text", "ERROR")
    for name, value in TEST_CREDENTIALS.items():
        os.environ.setdefault(name, value)
    with EmbeddedMoto() as server:
        out.print(f"[bold]docsync demo[/] on an embedded moto server at {server.endpoint}\n")
        settings = load_settings(
            endpoint_url=server.endpoint, aws={"max_attempts": 2}, concurrency=8
        )
        counter = CallCounter()
        engine = Engine.build(settings, counter)

        report = Infrastructure(settings, engine.clients).init()
        out.print("init: " + ", ".join(f"{r['kind']} {r['status']}" for r in report.resources))

        docs = [parse_document(d) for d in sample_documents(count, seed)]
        direct, piped = docs[: count // 10], docs[count // 10 :]
        counter.reset()
        with ThreadPoolExecutor(8) as pool:
            _, write_ms = _timed(lambda: list(pool.map(engine.pipeline.put, piped)))
        write_calls = counter.total()
        out.print(
            f"put: {len(piped)} documents through the write pipeline in {write_ms:.0f} ms"
            f" ({write_calls / len(piped):.1f} AWS calls per write)"
        )
        for doc in direct:  # written by "another application": S3 only, cache cold
            engine.objects.put(f"{settings.prefixes[doc.type]}{doc.id}.json", doc.body)
        again = engine.pipeline.put(piped[0])
        out.print(f"retry of the same write: version {again.version}, unchanged={again.unchanged}")

        stats = engine.reader.stats
        reads = [(d.type, d.id) for d in piped[:40]] + [(d.type, d.id) for d in direct[:20]]
        counter.reset()
        _, read_ms = _timed(lambda: [engine.reader.get(t, i) for t, i in reads])
        hits, misses, filled = stats.hits, stats.misses, stats.backfills
        second, reread_ms = _timed(lambda: [engine.reader.get(t, i) for t, i in reads[-20:]])
        out.print(
            f"get: {len(reads)} reads in {read_ms:.0f} ms — hits {hits}, misses"
            f" {misses} (backfilled {filled}); re-reading the misses:"
            f" {sum(r.cache == 'hit' for r in second)}/{len(second)} hits in {reread_ms:.0f} ms"
        )

        _listener_section(out, engine, direct[20:], piped[2])
        http_section(out, engine)

        table = Table(title="queries (newest first)")
        for column in ("query", "items", "source", "ms", "AWS calls"):
            table.add_column(column)
        queries: list[tuple[str, Query, str]] = [
            ("last 90 days, 50 newest", Query(limit=50), "auto"),
            ("customer acme", Query(customer="acme", limit=50), "auto"),
            ("status approved (changes)", Query(types=("change",), status="approved"), "auto"),
            (
                "announcements, globex, 30d",
                Query(types=("announcement",), customer="globex", since=parse_time("30d")),
                "auto",
            ),
            ("last 90 days via S3 (no cache)", Query(limit=50), "s3"),
        ]
        for label, query, source in queries:
            counter.reset()
            page, ms = _timed(lambda q=query, s=source: engine.reader.query(q, None, s))  # type: ignore[misc]
            table.add_row(
                label, str(len(page.items)), page.source, f"{ms:.0f}", str(counter.total())
            )
        out.print(table)
        try:
            engine.reader.query(Query(since=parse_time("120d")))
        except QueryOutsideWindowError as exc:
            out.print(f"a 120-day query from the cache is refused, not truncated: [dim]{exc}[/]")

        deleted = engine.pipeline.delete(piped[1].type, piped[1].id)
        _purge(engine)
        out.print(f"delete {deleted.type} {deleted.id}: deleted={deleted.deleted}")
        drift = _reconcile_section(out, engine, piped[10:20])
        from engine.streams.demo import stats_section

        stats_section(out, engine)
        summary: dict[str, Any] = {
            "documents": count,
            "writes": len(piped),
            "direct_s3_writes": len(direct),
            "hits": stats.hits,
            "misses": stats.misses,
            "backfilled": stats.backfills,
            "drift_found": drift,
        }
        out.print("\nsummary: " + json.dumps(summary))


def _purge(engine: Engine) -> None:
    """Drop every queued S3 notification (PurgeQueue is limited to once a minute)."""
    queue = QueueStore(engine.clients.sqs, engine.settings.endpoint_url)
    url = queue.url(engine.settings.queue)
    while messages := queue.receive(url, 10, None, 0, system_attributes=(), message_attributes=()):
        queue.delete_batch(url, {str(n): m["ReceiptHandle"] for n, m in enumerate(messages)})


def _listener_section(
    out: Console, engine: Engine, direct: list[Document], victim: Document
) -> None:
    """Writes that bypass docsync reach the cache through S3 events and the listener."""
    from engine.events.worker import SqsListener

    key = f"{engine.settings.prefixes[victim.type]}{victim.id}.json"
    engine.objects.delete(key)
    changed = parse_document(json.loads(direct[0].body) | {"title": "edited in the console"})
    engine.objects.put(f"{engine.settings.prefixes[changed.type]}{changed.id}.json", changed.body)
    listener = SqsListener.for_engine(engine, workers=8, wait_s=1)
    summary, ms = _timed(lambda: listener.run(drain=True))
    out.print(
        f"listen --drain: {summary.received} S3 notifications in {ms:.0f} ms → applied"
        f" {summary.applied}, skipped {summary.skipped} (duplicates of docsync's own writes and"
        f" of backfilled reads), failed {summary.failed}"
    )
    hits = sum(engine.reader.get(d.type, d.id).cache == "hit" for d in direct)
    edited = engine.reader.get(changed.type, changed.id)
    try:
        engine.reader.get(victim.type, victim.id)
        gone = "still served (wrong)"
    except NotFoundError:
        gone = "not found (tombstoned)"
    out.print(
        f"after the listener: {hits}/{len(direct)} direct S3 writes are cache hits; an edit made"
        f" straight in S3 reads back as {edited.document['title']!r} ({edited.cache}); a document"
        f" deleted straight from S3 is {gone}"
    )


def _reconcile_section(out: Console, engine: Engine, victims: list[Document]) -> int:
    """Drift of every class, planted behind docsync's back (events dropped), then found,
    repaired, and a clean second report."""
    from reconciler.reports import save, to_text
    from reconciler.run import Reconciler

    settings = engine.settings
    key = {d.id: f"{settings.prefixes[d.type]}{d.id}.json" for d in victims}
    for d in victims[:3]:  # missing: cache entries lost
        engine.cache.drop(d.type, d.id)
    for d in victims[3:5]:  # orphaned: deleted from S3, events dropped
        engine.objects.delete(key[d.id])
    for d in victims[5:8]:  # stale: changed in S3, events dropped
        edited = parse_document(json.loads(d.body) | {"title": d.title + " (edited in S3)"})
        engine.objects.put(key[d.id], edited.body)
    engine.objects.put("changes/CHG-broken.json", b'{"id": "CHG-broken", "title": ')  # invalid
    engine.objects.put("changes/notes from the console.json", b"{}")  # invalid: not an id
    _purge(engine)  # the events are lost: only the reconciler can notice
    out.print("\n[bold]reconcile[/]: drift planted behind docsync's back (events dropped)")
    report = Reconciler(engine).run("report")
    out.print(to_text(report.as_dict()))
    repair = Reconciler(engine).run("repair")
    where = save(engine, repair, None)
    out.print(to_text(repair.as_dict()) + f"\n  report saved to {where['s3']}")
    clean = Reconciler(engine).run("report")
    out.print(to_text(clean.as_dict()))
    return report.drift

"""`docsync` commands. Each reads flags > DOCSYNC_* env > TOML file > defaults."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, NoReturn, TypeVar

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from engine import keys
from engine.app import Engine
from engine.cli.output import console, emit, handle_errors, resolve_format, table
from engine.cloudwatch import PeriodicFlush
from engine.documents import TYPES, Document, parse_document
from engine.exceptions import ConfigError, InvalidDocumentError
from engine.infra import Infrastructure
from engine.logs import configure_logging
from engine.reader import Query
from engine.settings import Settings, load_settings

F = TypeVar("F", bound=Callable[..., Any])
TYPE_CHOICE = click.Choice(sorted(TYPES))


def common(mutating: bool = False) -> Callable[[F], F]:
    """Options every subcommand takes after its own name."""

    def decorate(fn: F) -> F:
        options = [
            click.option(
                "--format",
                "fmt",
                type=click.Choice(["auto", "json", "text"]),
                default=None,
                help="Output: json for scripts, text for people.",
            ),
            click.option(
                "--config",
                "config",
                type=click.Path(path_type=Path),
                default=None,
                help="TOML settings file (default config/docsync.toml if present).",
            ),
            click.option("--endpoint-url", default=None, help="AWS endpoint (e.g. moto)."),
            click.option("--region", default=None),
            click.option("--bucket", default=None),
            click.option("--table", default=None),
            click.option("--log-format", type=click.Choice(["auto", "json", "text"]), default=None),
        ]
        if mutating:
            options.append(
                click.option(
                    "--dry-run",
                    is_flag=True,
                    default=None,
                    help="Log every mutating call; make none.",
                )
            )
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def settings_from(opts: dict[str, Any]) -> Settings:
    flags = {
        "format": opts.pop("fmt", None),
        "endpoint_url": opts.pop("endpoint_url", None),
        "region": opts.pop("region", None),
        "bucket": opts.pop("bucket", None),
        "table": opts.pop("table", None),
        "log_format": opts.pop("log_format", None),
        "dry_run": opts.pop("dry_run", None) or None,
    }
    settings = load_settings(opts.pop("config", None), **flags)
    configure_logging(settings.log_format, settings.log_level)
    return settings


# Commands whose stdout is free for the alarms' EMF lines (the container's log); every other
# command prints its result on stdout, so its EMF lines go to stderr.
EMF_ON_STDOUT = frozenset({"serve_cmd"})


def _run(fn: Callable[..., None]) -> Callable[..., None]:
    """Resolve settings first, so a wrong setting exits 2 before anything runs; flush the
    CloudWatch figures every metrics_flush_s while the command runs, and once at its end."""

    def wrapper(**opts: Any) -> None:
        fmt = opts.get("fmt") or "auto"
        try:
            settings = settings_from(opts)
        except ConfigError as exc:
            click.echo(f"docsync: error: {exc}", err=True)
            if resolve_format(fmt) == "json":
                click.echo(json.dumps({"error": str(exc), "exit_code": 2}))
            sys.exit(2)
        stream = sys.stdout if fn.__name__ in EMF_ON_STDOUT else sys.stderr
        flusher = PeriodicFlush(settings, stream=stream).start()
        try:
            handle_errors(lambda **kw: fn(settings, **kw))(fmt=settings.format, **opts)
        finally:
            flusher.stop()

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="docsync")
def cli() -> None:
    """docsync: a DynamoDB cache of JSON documents, kept in step with S3 (the truth)."""


# -- init -------------------------------------------------------------------------------------


@cli.command("init")
@click.option(
    "--kinesis", is_flag=True, help="Also a Kinesis data stream destination, for the KCL consumer."
)
@common(mutating=True)
@_run
def init_cmd(settings: Settings, fmt: str, kinesis: bool) -> None:
    """Create bucket, cache and leases tables, queues, notifications (idempotent)."""
    infra = Infrastructure(settings, Engine.build(settings).clients)
    report = infra.init()
    if kinesis:
        infra.enable_kinesis_destination(report)

    def text(data: dict[str, Any]) -> None:
        rows = [[r["kind"], r["name"], r["status"], r.get("detail", "")] for r in data["resources"]]
        table(
            "docsync init" + (" (dry run)" if settings.dry_run else ""),
            ["resource", "name", "status", "detail"],
            rows,
        )

    emit(report.as_dict(), fmt, text)


# -- put / get / delete -----------------------------------------------------------------------


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


@cli.command("put")
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
@_run
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
        raise InvalidDocumentError(
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


@cli.command("get")
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
@_run
def get_cmd(settings: Settings, fmt: str, type_name: str, doc_id: str, version: int | None) -> None:
    """Read one document: the cache, or S3 on a miss (and backfill)."""
    if version is not None:
        from engine.cli.history_cmd import read_version

        document = read_version(settings, type_name, doc_id, version)
        emit(document, fmt, lambda d: console().print_json(json.dumps(d)))
        return
    result = Engine.build(settings).reader.get(type_name, doc_id)
    emit(result.document, fmt, lambda d: console().print_json(json.dumps(d)))


@cli.command("delete")
@click.option("--type", "type_name", type=TYPE_CHOICE, required=True)
@click.option("--expected-version", type=int, default=None)
@click.argument("doc_id")
@click.option(
    "--actor",
    default=None,
    help="Who writes, recorded in the document's history (default: DOCSYNC_ACTOR).",
)
@common(mutating=True)
@_run
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


@cli.command("query")
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
@_run
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
        limit=limit or settings.query_default_limit,
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


@cli.command("backfill")
@click.option("--type", "type_names", type=TYPE_CHOICE, multiple=True)
@click.option("--since", default=None, help="Only objects written since (S3 LastModified).")
@click.option("--customer", default=None)
@common(mutating=True)
@_run
def backfill_cmd(
    settings: Settings,
    fmt: str,
    type_names: tuple[str, ...],
    since: str | None,
    customer: str | None,
) -> None:
    """Warm the cache from S3: the reconciler's repair of `missing`, with filters."""
    from reconciler.backfill import backfill
    from reconciler.shards import plan

    engine = Engine.build(settings)
    types = type_names or tuple(sorted(TYPES))
    since_ts = keys.parse_time(since) if since else None
    if sys.stderr.isatty():
        shards = len(
            plan({t: settings.prefixes()[t] for t in types}, settings.reconcile_shards_per_type)
        )
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=True,
        ) as progress:
            task = progress.add_task("backfill (shards)", total=shards)
            counts = backfill(
                engine, types, since_ts, customer, on_shard_done=lambda _s: progress.advance(task)
            )
    else:
        counts = backfill(engine, types, since_ts, customer)
    emit(
        counts.as_dict(),
        fmt,
        lambda d: table("backfill", ["outcome", "count"], [[k, v] for k, v in d.items()]),
    )


# -- local / demo -----------------------------------------------------------------------------


@cli.command("local")
@click.option("--host", default="127.0.0.1")
@click.option("--port", type=int, default=5000)
def local_cmd(host: str, port: int) -> None:
    """Run the embedded moto server in the foreground (Ctrl-C stops it)."""
    from engine.local_moto import EmbeddedMoto

    try:
        server = EmbeddedMoto(host, port).start()
    except ConfigError as exc:
        _exit_usage(exc)
    click.echo(
        json.dumps({"endpoint": server.endpoint})
        if not sys.stdout.isatty()
        else f"moto server on {server.endpoint}\n"
        f"  export DOCSYNC_ENDPOINT_URL={server.endpoint}\n"
        "  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing\n"
        "  docsync init"
    )
    sys.stdout.flush()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    server.stop()


@cli.command("demo")
@click.option("--documents", type=click.IntRange(250, 5000), default=300, show_default=True,
              help="Corpus size; a tenth goes straight to S3 (21 at least).")  # fmt: skip
@click.option("--seed", type=int, default=7)
def demo_cmd(documents: int, seed: int) -> None:
    """Everything on an embedded moto server: init, writes, reads, queries, a summary."""
    from engine.local_moto import INSTALL_HINT

    try:
        from engine.demo import run_demo

        run_demo(documents, seed)
    except ImportError as exc:  # httpx, the demo's HTTP client, comes with the same extra
        _exit_usage(ConfigError(f"the demo needs {exc.name}: {INSTALL_HINT}"))
    except ConfigError as exc:
        _exit_usage(exc)


def _exit_usage(exc: ConfigError) -> NoReturn:
    click.echo(f"docsync: error: {exc}", err=True)
    sys.exit(exc.exit_code)


# -- listen -----------------------------------------------------------------------------------


@cli.command("listen")
@click.option("--drain", is_flag=True, help="Process what is queued now, print a summary, exit.")
@click.option("--workers", type=click.IntRange(1, 256), default=None)
@click.option(
    "--wait",
    "wait_s",
    type=click.IntRange(1, 20),
    default=10,
    help="Long-poll seconds per receive.",
)
@click.option(
    "--visibility",
    "visibility_s",
    type=click.IntRange(2, 43200),
    default=60,
    help="Seconds a received message stays hidden (extended while it is applied).",
)
@click.option("--metrics-port", type=int, default=0, help="Serve Prometheus /metrics (0: off).")
@common(mutating=True)
@_run
def listen_cmd(
    settings: Settings,
    fmt: str,
    drain: bool,
    workers: int | None,
    wait_s: int,
    visibility_s: int,
    metrics_port: int,
) -> None:
    """Apply S3 events from the queue to the cache (SIGTERM: finish in-flight, exit 0)."""
    from engine.events.worker import SqsListener
    from engine.metrics import serve

    if metrics_port:
        serve(metrics_port)
    engine = Engine.build(settings)
    listener = SqsListener(
        engine.clients, engine.applier, workers=workers, wait_s=wait_s, visibility_s=visibility_s
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: listener.stop.set())
    summary = listener.run(drain=drain)
    emit(
        summary.as_dict(),
        fmt,
        lambda d: table("listen", ["count", "value"], [[k, v] for k, v in d.items()]),
    )


def main() -> None:
    from engine.cli import (
        history_cmd,  # noqa: F401  (registers `history`)
        ops_cmds,  # noqa: F401  (registers `dlq`, `doctor`)
        reconcile_cmd,  # noqa: F401  (registers its commands)
        serve_cmd,  # noqa: F401  (registers `serve`)
        streams_cmds,  # noqa: F401  (registers `consume`, `stats`)
    )

    cli(prog_name="docsync")

"""`docsync backfill` and `docsync listen`: S3 into the cache, in bulk and event by event."""

from __future__ import annotations

import signal
import sys

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from engine import keys
from engine.app import Engine
from engine.cli.group import TYPE_CHOICE, common, with_settings
from engine.cli.metrics_flush import metrics_flush
from engine.cli.output import emit, table
from engine.documents import TYPES
from engine.settings import Settings

# -- backfill ---------------------------------------------------------------------------------


@click.command("backfill")
@click.option("--type", "type_names", type=TYPE_CHOICE, multiple=True)
@click.option("--since", default=None, help="Only objects written since (S3 LastModified).")
@click.option("--customer", default=None)
@common(mutating=True)
@with_settings
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
            plan({t: settings.prefixes[t] for t in types}, settings.reconcile.shards_per_type)
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


# -- listen -----------------------------------------------------------------------------------


@click.command("listen")
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
@with_settings
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
    listener = SqsListener.for_engine(
        engine, workers=workers, wait_s=wait_s, visibility_s=visibility_s
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: listener.stop.set())
    with metrics_flush(engine, periodic=True):  # its capacity, for `docsync stats`
        summary = listener.run(drain=drain)
    emit(
        summary.as_dict(),
        fmt,
        lambda d: table("listen", ["count", "value"], [[k, v] for k, v in d.items()]),
    )

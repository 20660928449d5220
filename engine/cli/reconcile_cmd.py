"""`docsync reconcile`: drift report, repair, history, schedule."""

from __future__ import annotations

import signal
import sys
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from engine.app import Engine
from engine.cli.main import TYPE_CHOICE, _run, cli, common
from engine.cli.output import console, emit, table
from engine.settings import Settings
from reconciler.run import Mode


@cli.command("reconcile")
@click.option("--repair", is_flag=True, help="Make the cache equal to S3 (never older).")
@click.option("--type", "type_names", type=TYPE_CHOICE, multiple=True)
@click.option("--report-dir", type=click.Path(file_okay=False), default=None)
@click.option("--fail-on-drift", is_flag=True, help="Exit 1 when drift remains.")
@click.option("--history", is_flag=True, help="List recent runs and their counts.")
@click.option("--schedule", is_flag=True, help="Run the schedule in the foreground.")
@click.option("--enqueue", is_flag=True, help="Send shard tasks to the work queue (many machines).")
@click.option(
    "--work", is_flag=True, help="Take shard tasks from the work queue until it is empty."
)
@click.option("--collect", "collect_run", default=None, help="Fold an enqueued run's results.")
@click.option(
    "--inventory",
    "inventory_uri",
    default=None,
    metavar="S3_URI",
    help="Read the S3 side from this S3 Inventory manifest.json (CSV) instead of listing.",
)
@common(mutating=True)
@_run
def reconcile_cmd(
    settings: Settings,
    fmt: str,
    repair: bool,
    type_names: tuple[str, ...],
    report_dir: str | None,
    fail_on_drift: bool,
    history: bool,
    schedule: bool,
    enqueue: bool,
    work: bool,
    collect_run: str | None,
    inventory_uri: str | None,
) -> None:
    """Compare S3 with the cache shard by shard; report drift, and repair it with --repair."""
    from reconciler import reports, tasks
    from reconciler.inventory import InventoryError, InventorySource
    from reconciler.run import Reconciler
    from reconciler.schedule import build

    if inventory_uri:
        others = {
            "--enqueue": enqueue,
            "--work": work,
            "--collect": collect_run,
            "--history": history,
            "--schedule": schedule,
        }
        clash = [flag for flag, given in others.items() if given]
        if clash:
            raise InventoryError(
                f"--inventory cannot be combined with {', '.join(clash)}:"
                " the report is read and sorted on this machine, for one run"
            )
    engine = Engine.build(settings)
    mode: Mode = "repair" if repair else "report"
    if enqueue:
        emit(tasks.enqueue(engine, mode, list(type_names) or None), fmt)
        return
    if work:
        emit({"tasks_done": tasks.work(engine, drain=True)}, fmt)
        return
    if collect_run:
        collected = tasks.collect(engine, collect_run)
        emit(
            collected,
            fmt,
            lambda d: console().print(
                reports.to_text(d) if "counts" in d else f"no results yet for {collect_run}"
            ),
        )
        if fail_on_drift and collected.get("remaining", 0) > 0:
            sys.exit(1)
        return
    if history:
        runs = reports.history(engine)
        emit(
            {"runs": runs},
            fmt,
            lambda d: table(
                "recent reconcile runs",
                ["started", "mode", "missing", "stale", "orphaned", "invalid", "remaining"],
                [
                    [
                        r["started_at"],
                        r["mode"],
                        r["counts"]["missing"],
                        r["counts"]["stale"],
                        r["counts"]["orphaned"],
                        r["counts"]["invalid"],
                        r["remaining"],
                    ]
                    for r in d["runs"]
                ],
            ),
        )
        return
    if schedule:
        scheduler = build(engine, blocking=True)
        signal.signal(signal.SIGTERM, lambda *_: scheduler.shutdown(wait=False))
        console().print(f"reconcile schedule: {[str(j.trigger) for j in scheduler.get_jobs()]}")
        scheduler.start()
        return
    reconciler = Reconciler(engine)
    types = type_names or None
    inventory = (
        InventorySource.open(engine.clients.s3, inventory_uri, settings.bucket)
        if inventory_uri
        else None
    )
    if sys.stderr.isatty():
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=True,
        ) as progress:
            task = progress.add_task(f"reconcile {mode}", total=None)
            result = reconciler.run(
                mode,
                types,
                on_shard_done=lambda _s: progress.advance(task),
                inventory=inventory,
            )
    else:
        result = reconciler.run(mode, types, inventory=inventory)
    data: dict[str, Any] = result.as_dict()
    data["report"] = reports.save(engine, result, report_dir or settings.report_dir)
    emit(data, fmt, lambda d: console().print(reports.to_text(d)))
    if fail_on_drift and result.remaining() > 0:
        sys.exit(1)

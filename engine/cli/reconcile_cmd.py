"""`docsync reconcile`: a group of subcommands, one per thing a reconcile can do.

    report / repair    compare S3 with the cache shard by shard; repair makes the cache equal
    enqueue / work / collect   the same run as shard tasks on the work queue (many machines)
    history            recent runs and their counts
    schedule           the schedule, in the foreground

`docsync reconcile` with no subcommand is still a report, and the flags of earlier releases
(`--repair`, `--history`, `--schedule`, `--enqueue`, `--work`, `--collect RUN_ID`) still work
for one release: each says on stderr which subcommand replaces it, and does exactly what it did.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from engine.app import Engine
from engine.cli.group import TYPE_CHOICE, common, with_settings
from engine.cli.metrics_flush import metrics_flush
from engine.cli.output import console, emit, table
from engine.exceptions import InventoryError
from engine.settings import Settings
from reconciler.run import Mode, Reconciler

# reports, tasks, the inventory and the schedule (APScheduler) are imported when a command
# needs them: every `docsync` start imports this module, as it did before the group.

# -- what each subcommand does (the deprecated flags run the same functions) ------------------


def run_report(
    engine: Engine,
    fmt: str,
    mode: Mode,
    type_names: tuple[str, ...],
    report_dir: str | None,
    fail_on_drift: bool,
    inventory_uri: str | None,
) -> None:
    from reconciler import reports
    from reconciler.inventory import InventorySource

    settings = engine.settings
    reconciler = Reconciler(engine)
    types = type_names or None
    inventory = (
        InventorySource.open(engine.clients.s3, inventory_uri, settings.bucket)
        if inventory_uri
        else None
    )
    with metrics_flush(engine):  # what the run cost, once it is over
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
    data["report"] = reports.save(engine, result, report_dir or settings.reconcile.report_dir)
    emit(data, fmt, lambda d: console().print(reports.to_text(d)))
    if fail_on_drift and result.remaining() > 0:
        sys.exit(1)


def run_enqueue(engine: Engine, fmt: str, mode: Mode, type_names: tuple[str, ...]) -> None:
    from reconciler import tasks

    emit(tasks.enqueue(engine, mode, list(type_names) or None), fmt)


def run_work(engine: Engine, fmt: str) -> None:
    from reconciler import tasks

    with metrics_flush(engine):
        done = tasks.work(engine, drain=True)
    emit({"tasks_done": done}, fmt)


def run_collect(engine: Engine, fmt: str, run_id: str, fail_on_drift: bool) -> None:
    from reconciler import reports, tasks

    collected = tasks.collect(engine, run_id)
    emit(
        collected,
        fmt,
        lambda d: console().print(
            reports.to_text(d) if "counts" in d else f"no results yet for {run_id}"
        ),
    )
    if fail_on_drift and collected.get("remaining", 0) > 0:
        sys.exit(1)


def run_history(engine: Engine, fmt: str) -> None:
    from reconciler import reports

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


def run_schedule(engine: Engine) -> None:
    from reconciler.schedule import build

    scheduler = build(engine, blocking=True)
    signal.signal(signal.SIGTERM, lambda *_: scheduler.shutdown(wait=False))
    console().print(f"reconcile schedule: {[str(j.trigger) for j in scheduler.get_jobs()]}")
    with metrics_flush(engine, periodic=True):
        scheduler.start()


# -- the options the subcommands share --------------------------------------------------------

type_option = click.option("--type", "type_names", type=TYPE_CHOICE, multiple=True)
report_dir_option = click.option("--report-dir", type=click.Path(file_okay=False), default=None)
fail_option = click.option("--fail-on-drift", is_flag=True, help="Exit 1 when drift remains.")
inventory_option = click.option(
    "--inventory",
    "inventory_uri",
    default=None,
    metavar="S3_URI",
    help="Read the S3 side from this S3 Inventory manifest.json (CSV) instead of listing.",
)

# -- the deprecated flag forms ----------------------------------------------------------------

# the deprecated mode flags, in the order the flag form tries them (their option names)
DEPRECATED = {
    "enqueue": "--enqueue",
    "work": "--work",
    "collect_run": "--collect",
    "history": "--history",
    "schedule": "--schedule",
    "repair": "--repair",
}


def replacement(opts: dict[str, Any]) -> str | None:
    """The subcommand that does what these flags do (None: no deprecated flag is given)."""
    if opts.get("enqueue"):
        return "docsync reconcile enqueue" + (" --repair" if opts.get("repair") else "")
    for name in ("work", "collect_run", "history", "schedule", "repair"):
        if opts.get(name):
            return "docsync reconcile " + ("collect RUN_ID" if name == "collect_run" else name)
    return None


def warn_deprecated(opts: dict[str, Any]) -> None:
    """One line on stderr naming the flags given and the subcommand to use instead."""
    use = replacement(opts)
    if use is None:
        return
    flags = " ".join(flag for name, flag in DEPRECATED.items() if opts.get(name))
    click.echo(
        f"docsync: warning: `docsync reconcile {flags}` is deprecated and will be removed in"
        f" the next release: use `{use}`",
        err=True,
    )


@with_settings
def reconcile_flags(
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
    """`docsync reconcile [flags]`, as in earlier releases."""
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
        run_enqueue(engine, fmt, mode, type_names)
    elif work:
        run_work(engine, fmt)
    elif collect_run:
        run_collect(engine, fmt, collect_run, fail_on_drift)
    elif history:
        run_history(engine, fmt)
    elif schedule:
        run_schedule(engine)
    else:
        run_report(engine, fmt, mode, type_names, report_dir, fail_on_drift, inventory_uri)


@click.group("reconcile", invoke_without_command=True)
@click.option("--repair", is_flag=True, help="Deprecated: `reconcile repair`.")
@type_option
@report_dir_option
@fail_option
@click.option("--history", is_flag=True, help="Deprecated: `reconcile history`.")
@click.option("--schedule", is_flag=True, help="Deprecated: `reconcile schedule`.")
@click.option("--enqueue", is_flag=True, help="Deprecated: `reconcile enqueue`.")
@click.option("--work", is_flag=True, help="Deprecated: `reconcile work`.")
@click.option("--collect", "collect_run", default=None, help="Deprecated: `reconcile collect`.")
@inventory_option
@common(mutating=True)
@click.pass_context
def reconcile_group(ctx: click.Context, /, **opts: Any) -> None:
    """Compare S3 with the cache shard by shard; report drift, or repair it.

    With no subcommand: a report (the flags of earlier releases still work, deprecated)."""
    if ctx.invoked_subcommand is not None:
        given = sorted(k for k, v in opts.items() if v not in (None, False, ()))
        if given:
            raise click.UsageError(
                f"options go after the subcommand: `docsync reconcile"
                f" {ctx.invoked_subcommand} [OPTIONS]`"
            )
        return
    warn_deprecated(opts)
    reconcile_flags(**opts)


def run_command(mode: Mode, summary: str) -> click.Command:
    """`reconcile report` and `reconcile repair`: the same options, one mode each."""

    @type_option
    @report_dir_option
    @fail_option
    @inventory_option
    @common(mutating=True)
    @with_settings
    def command(
        settings: Settings,
        fmt: str,
        type_names: tuple[str, ...],
        report_dir: str | None,
        fail_on_drift: bool,
        inventory_uri: str | None,
    ) -> None:
        engine = Engine.build(settings)
        run_report(engine, fmt, mode, type_names, report_dir, fail_on_drift, inventory_uri)

    return reconcile_group.command(mode, help=summary)(command)


report_cmd = run_command("report", "Report the drift between S3 and the cache (saved).")
repair_cmd = run_command("repair", "Make the cache equal to S3 (never older); the report is saved.")


@reconcile_group.command("enqueue")
@click.option("--repair", is_flag=True, help="Tasks that repair (default: report).")
@type_option
@common(mutating=True)
@with_settings
def enqueue_cmd(settings: Settings, fmt: str, repair: bool, type_names: tuple[str, ...]) -> None:
    """Send a run's shard tasks to the work queue (for many machines); prints its run id."""
    run_enqueue(Engine.build(settings), fmt, "repair" if repair else "report", type_names)


@reconcile_group.command("work")
@common(mutating=True)
@with_settings
def work_cmd(settings: Settings, fmt: str) -> None:
    """Take shard tasks from the work queue until it is empty."""
    run_work(Engine.build(settings), fmt)


@reconcile_group.command("collect")
@click.argument("run_id")
@fail_option
@common(mutating=True)
@with_settings
def collect_cmd(settings: Settings, fmt: str, run_id: str, fail_on_drift: bool) -> None:
    """Fold an enqueued run's results into one report."""
    run_collect(Engine.build(settings), fmt, run_id, fail_on_drift)


@reconcile_group.command("history")
@common()
@with_settings
def history_cmd(settings: Settings, fmt: str) -> None:
    """List recent runs and their counts."""
    run_history(Engine.build(settings), fmt)


@reconcile_group.command("schedule")
@common(mutating=True)
@with_settings
def schedule_cmd(settings: Settings, fmt: str) -> None:
    """Run the reconcile schedule in the foreground (SIGTERM stops it)."""
    run_schedule(Engine.build(settings))

"""`docsync dlq` (show / redrive the dead-letter queue), `docsync doctor` (check a deployment)."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from engine.aws import AwsClients
from engine.cli.group import common, with_settings
from engine.cli.output import console, emit
from engine.settings import Settings

SAMPLE = click.option(
    "--sample",
    type=click.IntRange(0, 100),
    default=10,
    show_default=True,
    help="How many messages to peek at (they return to the DLQ at once).",
)

SHOW_HELP = """Show the DLQ: approximate counts, the oldest message of a sample, and the sample
decoded (S3 events as bucket/key/event name; anything else raw, truncated).

Peeking does not consume: messages are received with a 30 s visibility timeout and released
at once (visibility 0). The oldest age comes from the sample's SentTimestamp (a lower bound;
CloudWatch's ApproximateAgeOfOldestMessage covers the whole queue).

\b
JSON (stable fields):
  {"dlq", "url",
   "approximate": {"visible", "in_flight", "delayed"},
   "oldest": {"sent_at", "age_s", "message_id"} | null,
   "oldest_basis", "sampled",
   "sample": [{"message_id", "sent_at", "age_s", "receive_count",
               "source_queue", "reason",
               "kind": "s3-event|s3-test-event|reconcile-task|malformed",
               "events": [{"bucket", "key", "name"}],
               "task", "error", "body"}],
   "peek": {"visibility_s", "released", "returned_at_once"},
   "move_tasks": [...] | null (null: the endpoint has no move tasks)}
"""

REDRIVE_HELP = """Move the DLQ's messages back to the queues they came from (S3 events to the
event queue, reconcile tasks to the work queue).

auto: SQS's own message move task (asynchronous; `docsync dlq` shows its progress), or,
where the endpoint lacks it (moto) or --max is given, copy: receive → send to the source
queue → delete from the DLQ only what was sent, in batches. A crash leaves at worst a
duplicate, which the listener tolerates. Copy takes at most what the DLQ held when it started
(or --max), so messages that fail again at once cannot keep it running. --dry-run moves and
receives nothing and says how many would move. Exit 1 when a message could not be sent
(it stays on the DLQ).

\b
JSON (stable fields):
  {"dlq", "dry_run", "method": "move-task|copy", "max",
   "approximate_before", "would_move", "moved", "failed", "not_deleted",
   "by_destination": {queue: count}, "task_handle", "fallback_reason"}
"""


def _table(title: str, columns: list[str], rows: list[list[Any]], styles: list[str]) -> None:
    """Cells as plain text: keys, ARNs and JSON in them contain brackets, not markup."""
    view = Table(title=title)
    for column in columns:
        view.add_column(column, overflow="fold")
    for row, style in zip(rows, styles, strict=True):
        view.add_row(*[Text(str(v), style=style if i == 1 else "") for i, v in enumerate(row)])
    console().print(view)


def _show(settings: Settings, fmt: str, sample: int) -> None:
    from engine.ops.dlq import inspect
    from engine.store.queue import QueueStore

    store = QueueStore(AwsClients(settings).sqs, settings.endpoint_url)
    emit(inspect(settings, store, sample), fmt, _show_text)


def _show_text(d: dict[str, Any]) -> None:
    out = console()
    counts = d["approximate"]
    out.print(
        f"{d['dlq']}: ~{counts['visible']} visible, {counts['in_flight']} in flight,"
        f" {counts['delayed']} delayed"
    )
    if not d["sampled"]:
        out.print("no message to show")
    if d["oldest"]:
        out.print(f"oldest in the sample: {d['oldest']['sent_at']} ({d['oldest']['age_s']} s ago)")
    rows = []
    for m in d["sample"]:
        if m["events"]:
            what = "; ".join(
                f"{e['name']} s3://{e['bucket']}/{e['key'] or ''}" for e in m["events"]
            )
        elif m["task"]:
            what = f"run {m['task']['run_id']} shard {m['task']['index']}/{m['task']['of']}"
        else:
            what = f"{m['error']}: {str(m['body'])[:120]}"
        rows.append([m["sent_at"], m["kind"], m["receive_count"], what, m["reason"] or ""])
    if rows:
        _table(
            f"sample of {d['sampled']}",
            ["sent", "kind", "receives", "content", "reason"],
            rows,
            ["" for _ in rows],
        )
    if d["sampled"]:
        back = (
            "at once" if d["peek"]["returned_at_once"] else f"within {d['peek']['visibility_s']} s"
        )
        out.print(f"peeked messages are back on the DLQ {back}")
    for task in d["move_tasks"] or []:
        out.print(f"move task: {task}")


@click.group("dlq", invoke_without_command=True)
@SAMPLE
@common()
@click.pass_context
def dlq_group(ctx: click.Context, /, **opts: Any) -> None:
    """Inspect (default: `dlq show`) or redrive the dead-letter queue."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(dlq_show, **opts)
    elif any(v is not None for k, v in opts.items() if k != "sample") or opts["sample"] != 10:
        raise click.UsageError(
            f"options go after the subcommand: docsync dlq {ctx.invoked_subcommand} [OPTIONS]"
        )


@dlq_group.command("show", help=SHOW_HELP)
@SAMPLE
@common()
@with_settings
def dlq_show(settings: Settings, fmt: str, sample: int) -> None:
    _show(settings, fmt, sample)


@dlq_group.command("redrive", help=REDRIVE_HELP)
@click.option("--max", "max_messages", type=click.IntRange(1), default=None,
              help="Move at most this many (copy method).")  # fmt: skip
@click.option("--method", type=click.Choice(["auto", "move-task", "copy"]), default="auto",
              show_default=True)  # fmt: skip
@common(mutating=True)
@with_settings
def dlq_redrive(settings: Settings, fmt: str, max_messages: int | None, method: Any) -> None:
    from engine.ops.dlq import redrive
    from engine.store.queue import QueueStore

    store = QueueStore(AwsClients(settings).sqs, settings.endpoint_url)
    result = redrive(settings, store, max_messages=max_messages, method=method)

    def text(d: dict[str, Any]) -> None:
        out = console()
        if d["dry_run"]:
            out.print(f"dry run: would move {d['would_move']} message(s) from {d['dlq']}")
        elif d["method"] == "move-task":
            out.print(f"SQS move task started ({d['task_handle']}); `docsync dlq` shows progress")
        else:
            where = ", ".join(f"{n} → {q}" for q, n in d["by_destination"].items()) or "nothing"
            out.print(f"moved {d['moved']} from {d['dlq']} ({where}); failed {d['failed']}")

    emit(result, fmt, text)
    if result["failed"]:
        sys.exit(1)


DOCTOR_HELP = """Check a deployed environment end to end: every resource exists, the cache
table has the key schema and GSIs `docsync init` creates, its stream (NEW_AND_OLD_IMAGES) and
TTL on expires_at are on, the bucket notifies the queue for every document type, the queues
redrive to the DLQ and take 64 KB messages, and each kind of access works (probes that change
nothing: reads of absent keys, conditional writes that cannot succeed).

Each finding says what is wrong and the command that fixes it. Exit 0 when no check fails
(warnings allowed), 1 otherwise.

\b
JSON (stable fields):
  {"ok": bool,
   "checks": [{"check", "status": "ok|warn|fail", "detail", "fix"}]}
"""


@click.command("doctor", help=DOCTOR_HELP)
@common()
@with_settings
def doctor_cmd(settings: Settings, fmt: str) -> None:
    from engine.ops.doctor import report
    from engine.ops.survey import run

    data = report(run(settings, AwsClients(settings)))

    def text(d: dict[str, Any]) -> None:
        style = {"ok": "green", "warn": "yellow", "fail": "bold red"}
        rows = [[c["check"], c["status"], c["detail"], c["fix"]] for c in d["checks"]]
        styles = [style[c["status"]] for c in d["checks"]]
        _table("docsync doctor", ["check", "status", "detail", "fix"], rows, styles)
        failed = sum(c["status"] == "fail" for c in d["checks"])
        console().print("all checks passed" if d["ok"] else f"{failed} check(s) failed")

    emit(data, fmt, text)
    if not data["ok"]:
        sys.exit(1)

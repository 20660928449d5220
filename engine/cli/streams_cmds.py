"""`docsync consume` (the local stream consumer) and `docsync stats` (the figures it derives)."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from typing import Any

import click

from engine import keys
from engine.app import Engine
from engine.aws import AwsClients
from engine.cli.group import common, with_settings
from engine.cli.metrics_flush import metrics_flush
from engine.cli.output import console, emit, table
from engine.settings import Settings


@click.command("consume")
@click.option("--drain", is_flag=True, help="Read every shard to its tip, print counts, exit.")
@click.option("--metrics-port", type=int, default=None, help="Serve Prometheus /metrics (0: off).")
@click.option("--window", "window_s", type=click.IntRange(1, 86400), default=None,
              help="Analytics window, seconds (default 60).")  # fmt: skip
@click.option("--analytics-dir", default=None, help="Keep analytics here instead of S3.")
@common(mutating=True)
@with_settings
def consume_cmd(
    settings: Settings,
    fmt: str,
    drain: bool,
    metrics_port: int | None,
    window_s: int | None,
    analytics_dir: str | None,
) -> None:
    """Consume the cache's DynamoDB stream: metrics, analytics (SIGTERM: checkpoint, exit 0).

    One consumer per stream is active; another started beside it waits as a standby and
    takes over when the active one stops renewing its lease.
    """
    from engine import metrics
    from engine.streams.consumer import LocalConsumer

    given = {"metrics_port": metrics_port, "window_s": window_s, "analytics_dir": analytics_dir}
    config = settings.replace(
        {f"streams.{k}": v for k, v in given.items() if v is not None}
    ).streams
    if config.metrics_port:
        metrics.serve(config.metrics_port)
    consumer = LocalConsumer(settings, config, AwsClients(settings))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: consumer.stop.set())
    with metrics_flush(Engine.build(settings), periodic=not drain):  # its capacity, for stats
        summary = consumer.run(drain=drain).as_dict()

    def text(d: dict[str, Any]) -> None:
        table("consume" + (" (dry run)" if settings.dry_run else ""), ["count", "value"], _flat(d))

    emit(summary, fmt, text)


@click.command("stats")
@click.option("--since", default="1h", show_default=True,
              help="ISO-8601 or relative (1h, 7d). Record time: the changes that happened since "
              "then, however late a consumer processed them (a backlog caught up today counts "
              "where its records fall, not today).")  # fmt: skip
@click.option("--windows", type=click.IntRange(0, 1000), default=10, show_default=True,
              help="How many of the latest analytics windows to show.")  # fmt: skip
@click.option("--analytics-dir", default=None, help="Read analytics from here instead of S3.")
@common()
@with_settings
def stats_cmd(
    settings: Settings, fmt: str, since: str, windows: int, analytics_dir: str | None
) -> None:
    """Hit ratio, read latency, sync lag, iterator age, TTL expiries, latest windows."""
    from engine.streams.stats import gather, render_text

    config = settings.streams
    if analytics_dir is not None:
        config = settings.replace({"streams.analytics_dir": analytics_dir}).streams
    data = gather(
        settings,
        config,
        AwsClients(settings),
        keys.parse_time(since),
        datetime.now(UTC),
        windows=windows,
    )
    emit(data, fmt, lambda d: render_text(d, console()))


def _flat(data: dict[str, Any], prefix: str = "") -> list[list[Any]]:
    rows: list[list[Any]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            rows.extend(_flat(value, f"{prefix}{key}."))
        else:
            rows.append([f"{prefix}{key}", value])
    return rows

"""`docsync init`, `local`, `demo`: the resources, an embedded moto server, the demo."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from typing import Any

import click

from engine.app import Engine
from engine.cli.group import common, exit_usage, with_settings
from engine.cli.output import emit, table
from engine.exceptions import ConfigError
from engine.infra import Infrastructure
from engine.settings import Settings

# -- init -------------------------------------------------------------------------------------


@click.command("init")
@click.option(
    "--kinesis", is_flag=True, help="Also a Kinesis data stream destination, for the KCL consumer."
)
@common(mutating=True)
@with_settings
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


# -- local / demo -----------------------------------------------------------------------------


@click.command("local")
@click.option("--host", default="127.0.0.1")
@click.option("--port", type=int, default=5000)
def local_cmd(host: str, port: int) -> None:
    """Run the embedded moto server in the foreground (Ctrl-C stops it)."""
    from engine.local_moto import EmbeddedMoto

    try:
        server = EmbeddedMoto(host, port).start()
    except ConfigError as exc:
        exit_usage(exc)
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


@click.command("demo")
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
        exit_usage(ConfigError(f"the demo needs {exc.name}: {INSTALL_HINT}"))
    except ConfigError as exc:
        exit_usage(exc)

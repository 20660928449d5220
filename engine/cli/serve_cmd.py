"""`docsync serve`: the long-running worker (listener, consumer, scheduler, HTTP API)."""

from __future__ import annotations

import sys

import click

from engine.app import Engine
from engine.cli.group import common, with_settings
from engine.settings import Settings


@click.command("serve")
@click.option("--host", default=None, help="Bind address (default: serve_host, 127.0.0.1).")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=None, help="Default: serve_port, 8080."
)
@common(mutating=True)
@with_settings
def serve_cmd(settings: Settings, fmt: str, host: str | None, port: int | None) -> None:
    """Run the worker until SIGTERM: the parts switched on in settings (serve_listener,
    serve_consumer, serve_scheduler, serve_api), /healthz, /readyz, /metrics, /v1 and /docs."""
    from engine.serve.service import Service

    service = Service(Engine.build(settings, l1=settings.l1.mode != "off"), host=host, port=port)
    sys.exit(service.run())

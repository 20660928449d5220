"""The `docsync` group and what every subcommand shares: the common options, settings
resolution (flags > DOCSYNC_* env > TOML file > defaults), and the run wrapper. Subcommand
modules import this; engine/cli/main.py assembles them (no module imports main)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from engine.cli.output import exit_code, handle_errors, resolve_format
from engine.cloudwatch import PeriodicFlush
from engine.documents import TYPES
from engine.exceptions import ConfigError
from engine.logs import configure_logging
from engine.settings import Settings, load_settings, log_deprecations

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
    log_deprecations(settings)
    return settings


# Commands whose stdout is free for the alarms' EMF lines (the container's log); every other
# command prints its result on stdout, so its EMF lines go to stderr.
EMF_ON_STDOUT = frozenset({"serve_cmd"})


def with_settings(fn: Callable[..., None]) -> Callable[..., None]:
    """Resolve settings first, so a wrong setting exits 2 before anything runs; flush the
    CloudWatch figures every metrics_flush_s while the command runs, and once at its end."""

    def wrapper(**opts: Any) -> None:
        fmt = opts.get("fmt") or "auto"
        try:
            settings = settings_from(opts)
        except ConfigError as exc:
            click.echo(f"docsync: error: {exc}", err=True)
            if resolve_format(fmt) == "json":
                click.echo(json.dumps({"error": str(exc), "exit_code": exit_code(exc)}))
            sys.exit(exit_code(exc))
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


def exit_usage(exc: ConfigError) -> NoReturn:
    click.echo(f"docsync: error: {exc}", err=True)
    sys.exit(exit_code(exc))

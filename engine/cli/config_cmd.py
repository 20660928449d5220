"""`docsync config`: the settings a command would run with, and where each came from."""

from __future__ import annotations

from typing import Any

import click

from engine.cli.group import common, with_settings
from engine.cli.output import console, emit
from engine.settings import Settings
from engine.settings.explain import explain


@click.command("config")
@click.option("--all", "show_all", is_flag=True, help="Every setting, defaults included.")
@common()
@with_settings
def config_cmd(settings: Settings, fmt: str, show_all: bool) -> None:
    """The resolved settings (flags > DOCSYNC_* env > file > defaults) and where each came
    from; secrets hidden. Without --all: only what is not a default."""
    origins = explain(settings)
    shown = [o for o in origins if show_all or o.source != "default"]
    data: dict[str, Any] = {
        "config_file": str(settings.config_file) if settings.config_file else None,
        "settings": [
            {"name": o.name, "value": o.value, "source": o.source, "from": o.detail} for o in shown
        ],
        "defaults_hidden": 0 if show_all else len(origins) - len(shown),
        "deprecations": list(settings.deprecations),
    }
    emit(data, fmt, _text)


def _text(data: dict[str, Any]) -> None:
    from rich.table import Table

    out = console()
    table = Table(title=f"settings (file: {data['config_file'] or 'none'})")
    table.add_column("setting", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("source", overflow="fold")
    for row in data["settings"]:
        where = f"{row['source']} {row['from']}".strip()
        table.add_row(row["name"], repr(row["value"]), where)
    out.print(table)
    if data["defaults_hidden"]:
        out.print(f"{data['defaults_hidden']} more at their defaults (--all shows them)")
    for message in data["deprecations"]:
        out.print(f"[yellow]deprecated:[/] {message}")

"""Output and errors for the CLI: JSON for scripts, readable text for people; exit codes."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from engine.exceptions import DocsyncError, InvalidDocumentError

F = TypeVar("F", bound=Callable[..., Any])
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_NOT_FOUND = 0, 1, 2, 3


def resolve_format(fmt: str) -> str:
    if fmt == "auto":
        return "text" if sys.stdout.isatty() else "json"
    return fmt


def emit(data: Any, fmt: str, text: Callable[[Any], None] | None = None) -> None:
    """JSON on stdout for scripts; `text` renders the same data for a person."""
    if resolve_format(fmt) == "json" or text is None:
        click.echo(json.dumps(data, default=str, ensure_ascii=False))
    else:
        text(data)


def console() -> Console:
    return Console(highlight=False)


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    view = Table(title=title, show_lines=False)
    for column in columns:
        view.add_column(column)
    for row in rows:
        view.add_row(*[str(v) for v in row])
    console().print(view)


def fail(message: str, code: int, fmt: str = "auto", fields: list[str] | None = None) -> None:
    click.echo(f"docsync: error: {message}", err=True)
    if resolve_format(fmt) == "json":
        payload: dict[str, Any] = {"error": message, "exit_code": code}
        if fields:
            payload["fields"] = fields
        click.echo(json.dumps(payload, ensure_ascii=False))
    sys.exit(code)


def handle_errors(fn: F) -> F:
    """DocsyncError → its exit code with a one-line message; nothing else is swallowed."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        fmt = str(kwargs.get("fmt") or "auto")
        try:
            return fn(*args, **kwargs)
        except InvalidDocumentError as exc:
            fail(str(exc), exc.exit_code, fmt, exc.fields)
        except DocsyncError as exc:
            fail(str(exc), exc.exit_code, fmt)
        except KeyboardInterrupt:
            fail("interrupted", 130, fmt)
        return None

    return wrapper  # type: ignore[return-value]

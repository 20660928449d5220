"""Output and errors for the CLI: JSON for scripts, readable text for people; exit codes."""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from engine.exceptions import (
    ConfigError,
    DocsyncError,
    InvalidRequestError,
    MalformedEventError,
    NotFoundError,
    RateLimitTimeoutError,
    StoreError,
    StreamNotFoundError,
    StreamsError,
    WriteConflictError,
)

F = TypeVar("F", bound=Callable[..., Any])
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_NOT_FOUND = 0, 1, 2, 3

# The one table of exit codes (DESIGN.md's CLI contract), by exception class: the most specific
# class of an error that is in it wins (its MRO is walked). Every DocsyncError subclass must be
# covered by an entry for itself or an ancestor below the root (tests/unit/test_exceptions.py).
EXIT_CODES: dict[type[DocsyncError], int] = {
    ConfigError: EXIT_USAGE,
    InvalidRequestError: EXIT_USAGE,
    NotFoundError: EXIT_NOT_FOUND,
    StreamNotFoundError: EXIT_NOT_FOUND,
    WriteConflictError: EXIT_FAILURE,
    RateLimitTimeoutError: EXIT_FAILURE,
    StoreError: EXIT_FAILURE,
    StreamsError: EXIT_FAILURE,
    MalformedEventError: EXIT_FAILURE,
}

# How the library's field names read on the command line, for messages that name them.
FLAGS = {
    "since": "--since",
    "until": "--until",
    "max_messages": "--max",  # docsync dlq redrive
    "inventory": "--inventory",  # docsync reconcile
}
# A field's name as a word of the message, not part of a quoted value, a path or a URI.
_FIELD = r"(?<![-\w/.'\"]){}(?![-\w/'\"])"


def exit_code(exc: DocsyncError) -> int:
    """The exit code of an error: its most specific class in EXIT_CODES (else a failure)."""
    for cls in type(exc).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return EXIT_FAILURE


def message(exc: DocsyncError) -> str:
    """The error's one line, with the fields it names written as this CLI's flags."""
    text = str(exc)
    for field in getattr(exc, "fields", ()):
        if field in FLAGS:
            text = re.sub(_FIELD.format(re.escape(field)), FLAGS[field], text)
    return text


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
        except InvalidRequestError as exc:
            fail(message(exc), exit_code(exc), fmt, exc.fields)
        except DocsyncError as exc:
            fail(message(exc), exit_code(exc), fmt)
        except KeyboardInterrupt:
            fail("interrupted", 130, fmt)
        return None

    return wrapper  # type: ignore[return-value]

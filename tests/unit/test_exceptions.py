"""One tree of errors under DocsyncError, and one table each in the adapters: every error has
an exit code (engine/cli/output.py) and an HTTP status (engine/serve/errors.py), decided by its
most specific class in the table, never by an attribute of the class."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import engine
import reconciler
from engine.cli.output import EXIT_CODES, exit_code, message
from engine.exceptions import (
    DocsyncError,
    InvalidDocumentError,
    InvalidPageTokenError,
    InvalidRequestError,
    InvalidTimeError,
    InventoryError,
    MalformedEventError,
    NotFoundError,
    PreconditionFailedError,
    QueryOutsideWindowError,
    StreamNotFoundError,
    WriteConflictError,
)
from engine.serve.errors import STATUSES, for_exception, status_of


def _import_everything() -> None:
    """Every module, so that an error class defined anywhere is seen by __subclasses__()."""
    for package in (engine, reconciler):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name.endswith(("kcl", "multilang")):  # need the optional amazon-kclpy
                continue
            try:
                importlib.import_module(info.name)
            except ImportError:
                continue


def _subclasses(cls: type[DocsyncError]) -> set[type[DocsyncError]]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | _subclasses(sub)
    return found


_import_everything()
ALL = sorted(_subclasses(DocsyncError), key=lambda c: c.__qualname__)


def _covered(table: dict[type[DocsyncError], int], cls: type[DocsyncError]) -> bool:
    return any(c in table for c in cls.__mro__ if c is not DocsyncError)


def test_the_walk_finds_the_whole_tree() -> None:
    names = {c.__name__ for c in ALL}
    assert {"StreamsError", "QueueError", "MoveTaskUnsupportedError", "InventoryError"} <= names
    assert len(ALL) >= 20


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_every_error_has_an_exit_code_and_an_http_status(cls: type[DocsyncError]) -> None:
    assert _covered(EXIT_CODES, cls), f"{cls.__name__}: no exit code in engine/cli/output.py"
    assert _covered(STATUSES, cls), f"{cls.__name__}: no HTTP status in engine/serve/errors.py"
    assert "exit_code" not in vars(cls), "exit codes live in the CLI's table, not on the class"


def test_every_error_class_is_drawn_in_the_tree_of_engine_exceptions() -> None:
    doc = importlib.import_module("engine.exceptions").__doc__ or ""
    missing = [c.__name__ for c in ALL if c.__name__ not in doc]
    assert missing == []


@pytest.mark.parametrize(
    ("error", "code", "status"),
    [
        (InvalidDocumentError("bad", ["title"]), 2, 422),
        (InvalidPageTokenError("forged"), 2, 422),
        (QueryOutsideWindowError("too old"), 2, 422),
        (InvalidTimeError("invalid time 'x'", ["time"]), 2, 422),
        (InventoryError("no manifest"), 2, 422),
        (NotFoundError("gone"), 3, 404),
        (StreamNotFoundError("no stream"), 3, 500),
        (WriteConflictError("moved on", 4), 1, 409),
        (PreconditionFailedError("If-Match", 4), 1, 412),
    ],
)
def test_the_most_specific_class_wins(error: DocsyncError, code: int, status: int) -> None:
    assert exit_code(error) == code
    assert status_of(error) == status
    assert for_exception(error).status_code == status


def test_the_request_errors_are_one_family() -> None:
    for cls in (
        InvalidDocumentError,
        InvalidPageTokenError,
        QueryOutsideWindowError,
        InvalidTimeError,
    ):
        assert issubclass(cls, InvalidRequestError)
    assert not issubclass(InvalidTimeError, InvalidDocumentError)


def test_a_malformed_event_is_in_the_tree_and_still_a_value_error() -> None:
    assert issubclass(MalformedEventError, DocsyncError)
    assert issubclass(MalformedEventError, ValueError)


def test_the_cli_writes_the_fields_of_a_range_error_as_its_flags() -> None:
    """The library names fields; only the CLI knows they are flags."""
    error = InvalidTimeError("since is after until", ["since", "until"])
    assert message(error) == "--since is after --until"
    assert str(error) == "since is after until"
    assert message(InvalidTimeError("until is more than a day in the future", ["until"])) == (
        "--until is more than a day in the future"
    )
    untouched = InvalidTimeError("invalid time 'since-ish': use ISO-8601", ["time"])
    assert message(untouched) == str(untouched)


def test_the_library_names_no_flag_of_the_cli() -> None:
    """`docsync dlq redrive --max` and `docsync reconcile --inventory`: the library's errors name
    the field (max_messages, inventory); the CLI words it as the flag, and leaves the given value
    alone even when the value contains the field's name."""
    from engine.ops.dlq import redrive
    from reconciler.inventory import parse_uri

    with pytest.raises(InvalidRequestError) as clash:
        redrive(None, None, max_messages=1, method="move-task")  # type: ignore[arg-type]
    assert clash.value.fields == ["max_messages"] and "--" not in str(clash.value)
    assert message(clash.value) == (
        "--max cannot bound a move task (SQS moves the whole queue): use copy"
    )
    with pytest.raises(InventoryError) as bad:
        parse_uri("inventory/manifest.json")
    assert bad.value.fields == ["inventory"] and "--" not in str(bad.value)
    assert message(bad.value) == (
        "--inventory wants the manifest's S3 URI, s3://BUCKET/…/manifest.json:"
        " got 'inventory/manifest.json'"
    )

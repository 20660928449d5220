"""engine/logs.py: one JSON object per line, bound extras, secrets masked."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from loguru import logger

from engine.logs import configure_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    yield
    configure_logging("json", "WARNING", stream=sys.stderr)  # as tests/conftest.py sets it


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    text = stream.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_one_json_object_per_line_with_ts_level_msg_and_extras() -> None:
    out = io.StringIO()
    configure_logging("json", stream=out)
    logger.bind(op="get", cache="hit", duration_ms=1.5, dry_run=False).info("read {}", "a-1")
    logger.warning("second\nline")
    first, second = lines(out)
    assert first["msg"] == "read a-1"
    assert first["level"] == "INFO"
    assert first["op"] == "get"
    assert first["cache"] == "hit"
    assert first["duration_ms"] == 1.5
    assert first["dry_run"] is False
    assert first["ts"][:2] == "20"
    assert "T" in first["ts"]
    assert second["msg"] == "second\nline"
    assert second["level"] == "WARNING"


def test_level_filter() -> None:
    out = io.StringIO()
    configure_logging("json", "WARNING", stream=out)
    logger.info("dropped")
    logger.error("kept")
    assert [line["msg"] for line in lines(out)] == ["kept"]


@pytest.mark.parametrize(
    "key",
    [
        "secret",
        "client_secret",
        "db_password",
        "PASSWORD",
        "session_token",
        "aws_credentials",
        "Authorization",
        "api_key",
    ],
)
def test_secret_values_are_masked(key: str) -> None:
    out = io.StringIO()
    configure_logging("json", stream=out)
    logger.bind(**{key: "hunter2-value"}, op="x").info("connect")
    (line,) = lines(out)
    assert line[key] == "***"
    assert line["op"] == "x"
    assert "hunter2-value" not in out.getvalue()


def test_non_json_values_are_stringified() -> None:
    out = io.StringIO()
    configure_logging("json", stream=out)
    logger.bind(items=[1, 2], when=frozenset({"a"}), obj=object()).info("m")
    (line,) = lines(out)
    assert line["items"] == [1, 2]
    assert line["when"] == "frozenset({'a'})"
    assert line["obj"].startswith("<object object")


def test_exception_is_included() -> None:
    out = io.StringIO()
    configure_logging("json", stream=out)
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")
    (line,) = lines(out)
    assert line["msg"] == "failed"
    assert line["level"] == "ERROR"
    assert "boom" in line["exception"]


def test_text_format_keeps_braces_in_extras() -> None:
    out = io.StringIO()
    configure_logging("text", stream=out)
    logger.bind(op="query", filters={"type": "change"}).info("done")
    text = out.getvalue()
    assert "done" in text
    assert "query" in text
    assert "{'type': 'change'}" in text


def test_auto_is_json_when_not_a_terminal() -> None:
    out = io.StringIO()
    configure_logging("auto", stream=out)
    logger.info("piped")
    assert lines(out)[0]["msg"] == "piped"

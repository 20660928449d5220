"""loguru set-up: compact JSON lines for services and pipes, readable text on a terminal."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from loguru import logger

_SECRET_WORDS = ("secret", "password", "token", "credential", "authorization", "api_key")


def _json_sink(stream: TextIO) -> Any:
    def sink(message: Any) -> None:
        record = message.record
        line: dict[str, Any] = {
            "ts": record["time"].isoformat(),
            "level": record["level"].name,
            "msg": record["message"],
        }
        for key, value in record["extra"].items():
            secret = any(word in key.lower() for word in _SECRET_WORDS) and key != "page_token"
            line[key] = "***" if secret else value
        if record["exception"] is not None:
            line["exception"] = repr(record["exception"].value)
        stream.write(json.dumps(line, default=str, ensure_ascii=False) + "\n")
        stream.flush()

    return sink


def _text_format(record: Any) -> str:
    extra = " ".join(
        f"{k}={v}" for k, v in record["extra"].items() if k not in ("op",) and v is not None
    )
    extra = extra.replace("{", "{{").replace("}", "}}")
    op = record["extra"].get("op", "-")
    return (
        "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
        f"<cyan>{op}</cyan> {{message}} <dim>{extra}</dim>\n{{exception}}"
    )


def configure_logging(fmt: str = "auto", level: str = "INFO", stream: TextIO | None = None) -> None:
    """`auto` means text on a terminal, JSON otherwise. Logs go to stderr; results to stdout."""
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "text" if stream.isatty() else "json"
    logger.remove()
    if fmt == "json":
        logger.add(_json_sink(stream), level=level, format="{message}")
    else:
        logger.add(stream, level=level, format=_text_format, colorize=stream.isatty())

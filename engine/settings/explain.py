"""Where each setting's value came from: a flag, an environment variable, the file, or the
default, the way `aws configure list` answers it. pydantic-settings merges its sources and
keeps no trace of them, so this reads the same sources again, with the same renames."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, SecretStr

from engine.settings.legacy import env_name, move_file_keys, moved
from engine.settings.model import Settings
from engine.settings.sections import SECTIONS

HIDDEN = "********"


@dataclass(frozen=True, slots=True)
class Origin:
    name: str  # the dotted path: `serve.port`, `prefixes.change`, `retries.throttling.base_ms`
    value: Any  # secrets hidden
    source: str  # "flag", "env", "file" or "default"
    detail: str  # the flag, the variable or the file that set it ("" for a default)


def explain(settings: Settings) -> list[Origin]:
    """Every setting of `settings`, with the source that set it."""
    env = {k.lower() for k in os.environ}
    file_data: dict[str, Any] = {}
    if settings.config_file is not None:
        with settings.config_file.open("rb") as fh:
            file_data = move_file_keys(tomllib.load(fh), [])
    old_names: dict[str, list[str]] = {}
    for old, to in moved().items():
        old_names.setdefault(".".join(to), []).append(env_name(None, old))
    out = []
    for path, value in _leaves(settings):
        source, detail = "default", ""
        if any(path == f or f.startswith(path + ".") for f in settings.flags):
            source, detail = "flag", "--" + path.replace("_", "-")
        elif (variable := _env_for(path, env, old_names.get(path, []))) is not None:
            source, detail = "env", variable
        elif _in(file_data, path):
            source, detail = "file", str(settings.config_file)
        out.append(Origin(path, _shown(value), source, detail))
    return out


def _leaves(model: BaseModel, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name in type(model).model_fields:
        value = getattr(model, name)
        path = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            yield from _leaves(value, path + ".")
        elif name == "prefixes" and not prefix:
            yield from ((f"prefixes.{k}", v) for k, v in value.items())
        else:
            yield path, value


def _env_for(path: str, env: set[str], old_names: list[str]) -> str | None:
    """The variable that set `path`: its own (`DOCSYNC_SERVE_PORT`), its table's as JSON, or
    the old flat name that moved there (`DOCSYNC_MAX_ATTEMPTS`), in the order they win."""
    parts = path.split(".")
    if parts[0] in SECTIONS or parts[0] in ("prefixes", "retries"):
        names = [env_name(parts[0], parts[1]), env_name(None, parts[0])]
    else:
        names = [env_name(None, parts[0])]
    names += old_names
    return next((n for n in names if n.lower() in env), None)


def _in(data: Mapping[str, Any], path: str) -> bool:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _shown(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return HIDDEN
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value

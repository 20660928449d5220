"""Where settings come from: flags > DOCSYNC_* environment > the TOML file > defaults.

pydantic-settings reads each source and merges the tree (a section given in part keeps the
rest of its defaults). These two subclasses only rename the old flat names first
(engine/settings/legacy.py) and note each rename, so a deprecation can be shown once.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings, EnvSettingsSource, TomlConfigSettingsSource

from engine.settings.legacy import move_env, move_file_keys

# The file and the notes of the load under way: pydantic-settings builds its sources in a
# classmethod, with no instance to carry them.
toml_path: ContextVar[Path | None] = ContextVar("docsync_toml_path", default=None)
notes: ContextVar[list[str] | None] = ContextVar("docsync_settings_notes", default=None)


def _note_list() -> list[str]:
    found = notes.get()
    return found if found is not None else []


class TomlFile(TomlConfigSettingsSource):
    """The whole file: top-level keys and the section tables, old flat keys moved in."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls, toml_file=path)

    def __call__(self) -> dict[str, Any]:
        return move_file_keys(super().__call__(), _note_list())


class Environment(EnvSettingsSource):
    """DOCSYNC_<KEY> and DOCSYNC_<SECTION>_<KEY>; old names renamed to the new ones."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        loaded: Mapping[str, str | None] = self.env_vars
        present = {k: v for k, v in loaded.items() if v is not None}
        moved = move_env(present, _note_list())
        self.env_vars = {**{k: v for k, v in loaded.items() if v is None}, **moved}

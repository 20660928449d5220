"""The flat names of earlier releases (`serve_port`, `DOCSYNC_SHUTDOWN_TIMEOUT_S`, …) and
where each now lives in the tree. They still work, for one release, with a deprecation line.

Moving them is plain dictionary work on what the file and the environment hold, before
pydantic validates anything, so an old name and its new place can never disagree silently:
the new place wins, and the message says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.documents import TYPES

# old flat name → (section, key); the environment name was DOCSYNC_<OLD NAME>.
_SAME_KEY = {
    "aws": (
        "retry_mode",
        "max_attempts",
        "connect_timeout_s",
        "read_timeout_s",
        "consumed_capacity",
    ),
    "dynamodb": ("rate_limit_timeout_s",),
    "reconcile": ("report_dir",),
    "init": ("versioning", "noncurrent_version_days", "queue_retention_days", "tags"),
    "serve": (
        "shutdown_timeout_s",
        "part_restart_max_s",
        "api_keys",
        "api_keys_file",
        "rate_limit_per_minute",
        "rate_limit_burst",
        "cors_origins",
        "max_body_bytes",
    ),
}
_PREFIXED = {  # section → keys whose old name was `<section>_<key>`
    "aws": ("breakers", "metrics"),
    "dynamodb": ("rps", "burst"),
    "breaker": ("fail_max", "reset_s", "success_threshold"),
    "query": ("page_max", "default_limit"),
    "l1": ("max_bytes", "max_staleness_s"),
    "reconcile": (
        "shards_per_type",
        "workers",
        "report_cap",
        "report_cron",
        "repair_cron",
        "misfire_grace_s",
        "lock_ttl_s",
    ),
    "serve": ("listener", "consumer", "scheduler", "api", "host", "port"),
    "metrics": ("namespace", "environment", "sink", "flush_s"),
}


def moved() -> dict[str, tuple[str, str]]:
    """Every old flat name and its (section, key); type prefixes from the type registry."""
    table = {"l1": ("l1", "mode")}  # first: `l1 = "auto"` holds the name of its new table
    table.update({key: (section, key) for section, keys in _SAME_KEY.items() for key in keys})
    table.update({f"{s}_{k}": (s, k) for s, keys in _PREFIXED.items() for k in keys})
    table.update({f"{name}_prefix": ("prefixes", name) for name in TYPES})
    return table


def env_name(section: str | None, key: str) -> str:
    return "DOCSYNC_" + (f"{section}_{key}" if section else key).upper()


def toml_name(section: str, key: str) -> str:
    return f"{key} in [{section}]"


def move_file_keys(data: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """The file's top level with each old flat key moved into its table."""
    out = dict(data)
    for old, (section, key) in moved().items():
        if old not in out or (old == section and isinstance(out[old], Mapping)):
            continue  # absent, or already the new table of the same name (`[l1]`)
        value = out.pop(old)
        table = dict(out.get(section) or {})
        if key in table:
            notes.append(f"settings file: `{old}` is ignored, `{toml_name(section, key)}` is set")
        else:
            table[key] = value
            notes.append(f"settings file: `{old}` is deprecated, write `{toml_name(section, key)}`")
        out[section] = table
    return out


def move_env(env: dict[str, str], notes: list[str]) -> dict[str, str]:
    """Environment variables (lower-cased names, as pydantic-settings keeps them) with each
    old name renamed to its new one."""
    out = dict(env)
    for old, (section, key) in moved().items():
        old_env, new_env = env_name(None, old), env_name(section, key)
        if old_env == new_env or old_env.lower() not in out:
            continue  # the same name as before, or not set
        value = out.pop(old_env.lower())
        if new_env.lower() in out:
            notes.append(f"{old_env} is ignored, {new_env} is set")
        else:
            out[new_env.lower()] = value
            notes.append(f"{old_env} is deprecated, set {new_env}")
    return out


def move_flags(flags: Mapping[str, Any], notes: list[str]) -> dict[str, Any]:
    """Keyword arguments of load_settings: sections as dicts; an old flat name still works."""
    out: dict[str, Any] = {}
    table = moved()
    for name, value in flags.items():
        if name in table and not (name == table[name][0] and isinstance(value, Mapping)):
            section, key = table[name]
            out.setdefault(section, {})[key] = value
            notes.append(f"load_settings({name}=…) is deprecated, pass {section}={{{key!r}: …}}")
        elif isinstance(value, Mapping) and isinstance(out.get(name), dict):
            out[name] = {**out[name], **value}
        else:
            out[name] = value
    return out

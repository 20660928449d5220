"""engine/settings/explain.py: which source set each setting (`docsync config`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.settings import Settings, load_settings
from engine.settings.explain import HIDDEN, Origin, explain
from tests.unit.test_settings import _clean_env  # noqa: F401 - autouse: no DOCSYNC_* from outside


def by_name(settings: Settings) -> dict[str, Origin]:
    return {o.name: o for o in explain(settings)}


def test_each_source_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "docsync.toml"
    path.write_text('queue = "q-file"\n[serve]\nport = 9000\n[prefixes]\nchange = "c/"\n')
    monkeypatch.setenv("DOCSYNC_SERVE_HOST", "0.0.0.0")
    monkeypatch.setenv("DOCSYNC_STREAMS", '{"window_s": 120}')  # a whole table, as JSON
    monkeypatch.setenv("DOCSYNC_PAGE_TOKEN_SECRET", "hunter2")
    origins = by_name(load_settings(path, table="t-flag", reconcile={"workers": 3}))

    assert origins["table"] == Origin("table", "t-flag", "flag", "--table")
    assert origins["reconcile.workers"].source == "flag"
    assert origins["serve.host"] == Origin("serve.host", "0.0.0.0", "env", "DOCSYNC_SERVE_HOST")
    assert origins["streams.window_s"] == Origin("streams.window_s", 120, "env", "DOCSYNC_STREAMS")
    assert origins["serve.port"] == Origin("serve.port", 9000, "file", str(path))
    assert origins["queue"].source == "file" and origins["prefixes.change"].value == "c/"
    assert origins["prefixes.announcement"] == Origin(
        "prefixes.announcement", "announcements/", "default", ""
    )
    assert origins["page_token_secret"].value == HIDDEN
    assert "hunter2" not in repr(list(origins.values()))
    assert origins["retries.throttling.max_attempts"].source == "default"
    given = by_name(load_settings(None, retries={"throttling": {"max_attempts": 4}}, l1={}))
    assert given["retries.throttling.max_attempts"] == Origin(
        "retries.throttling.max_attempts", 4, "flag", "--retries.throttling.max-attempts"
    )
    assert given["retries.throttling.base_ms"].source == "default"  # not given: its default
    tagged = by_name(load_settings(None, init={"tags": {"team": "docs"}}))
    assert tagged["init.tags"] == Origin("init.tags", {"team": "docs"}, "flag", "--init.tags")


def test_an_old_name_is_named_as_the_user_wrote_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCSYNC_MAX_ATTEMPTS", "3")
    path = tmp_path / "old.toml"
    path.write_text("serve_port = 9100\n")
    with pytest.warns(DeprecationWarning):
        origins = by_name(load_settings(path))
    assert origins["aws.max_attempts"] == Origin(
        "aws.max_attempts", 3, "env", "DOCSYNC_MAX_ATTEMPTS"
    )
    assert origins["serve.port"] == Origin("serve.port", 9100, "file", str(path))


def test_every_setting_is_listed_once() -> None:
    names = [o.name for o in explain(load_settings(None))]
    assert len(names) == len(set(names))
    assert {
        "bucket",
        "serve.port",
        "streams.window_s",
        "prefixes.change",
        "aws.max_attempts",
    } <= set(names)
    assert all(o.source == "default" for o in explain(load_settings(None)))

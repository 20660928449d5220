"""Settings from the command line's point of view: wrong values exit 2 and say which one;
flags > DOCSYNC_* env > TOML file > defaults."""

from __future__ import annotations

import json
from pathlib import Path

from engine.app import Engine
from engine.sample import sample_documents
from tests.e2e.conftest import Aws, Cli, seed


def test_a_wrong_env_setting_exits_2_and_names_it(cli: Cli, aws: Aws) -> None:
    run = cli("query", env={"DOCSYNC_CACHE_TTL_DAYS": "abc"}, expect=2)

    assert "cache_ttl_days" in run.stderr, str(run)
    assert "DOCSYNC_CACHE_TTL_DAYS" in run.stderr
    assert "Traceback" not in run.stderr
    error = run.json()
    assert error["exit_code"] == 2
    assert "cache_ttl_days" in error["error"]


def test_a_missing_config_file_exits_2(cli: Cli, aws: Aws) -> None:
    run = cli("query", "--config", "missing.toml", expect=2)

    assert "missing.toml" in run.stderr, str(run)
    assert "Traceback" not in run.stderr
    assert run.json()["exit_code"] == 2


def test_flags_beat_env_beat_the_config_file(cli: Cli, aws: Aws, tmp_path: Path) -> None:
    config = tmp_path / "docsync.toml"
    config.write_text(
        'bucket = "file-bucket"\ntable = "file-table"\nleases_table = "file-leases"\n'
        'history_table = "file-history"\n'
        'queue = "file-events"\ndlq = "file-events-dlq"\n',
        encoding="utf-8",
    )

    report = cli(
        "init",
        "--config",
        config,
        "--table",
        "flag-table",
        env={"DOCSYNC_BUCKET": "env-bucket", "DOCSYNC_TABLE": "env-table"},
    ).json()

    created = {(r["kind"], r["name"]) for r in report["resources"] if r["status"] == "created"}
    assert {
        ("bucket", "env-bucket"),
        ("table", "flag-table"),
        ("table", "file-leases"),
        ("queue", "file-events"),
        ("queue", "file-events-dlq"),
    } <= created
    assert aws.bucket_names() == {"env-bucket"}
    assert aws.table_names() == {"flag-table", "file-leases", "file-history"}


def test_old_flat_names_still_work_and_say_once_they_are_deprecated(
    cli: Cli, ready: Engine, tmp_path: Path
) -> None:
    """A file and an environment of the previous release: the command runs with their values
    and stderr names each old name and its new place, once."""
    config = tmp_path / "old.toml"
    config.write_text('query_default_limit = 2\nl1 = "off"\n', encoding="utf-8")
    seed(ready, sample_documents(20, 3))

    run = cli(
        "query",
        "--type",
        "change",
        "--format",
        "json",
        "--config",
        config,
        env={"DOCSYNC_MAX_ATTEMPTS": "3", "DOCSYNC_REPORT_DIR": str(tmp_path)},
    )

    assert len(run.json()["items"]) == 2, str(run)  # query_default_limit = 2, moved to [query]
    lines = [line for line in run.stderr.splitlines() if "deprecated" in line]
    expected = [
        "DOCSYNC_MAX_ATTEMPTS is ignored, DOCSYNC_AWS_MAX_ATTEMPTS is set",  # the harness sets it
        "DOCSYNC_REPORT_DIR is deprecated, set DOCSYNC_RECONCILE_REPORT_DIR",
        "`query_default_limit` is deprecated, write `default_limit in [query]`",
        "`l1` is deprecated, write `mode in [l1]`",
    ]
    for message in expected:
        assert sum(message in line for line in lines) == 1, (message, run.stderr)
    assert "Traceback" not in run.stderr


def test_the_new_names_run_without_a_deprecation(cli: Cli, ready: Engine, tmp_path: Path) -> None:
    config = tmp_path / "new.toml"
    config.write_text('[query]\ndefault_limit = 1\n[l1]\nmode = "off"\n', encoding="utf-8")
    seed(ready, sample_documents(20, 3))
    run = cli("query", "--type", "change", "--format", "json", "--config", config)
    assert len(run.json()["items"]) == 1
    assert "deprecated" not in run.stderr, run.stderr


def test_config_shows_each_setting_and_where_it_came_from(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "docsync.toml"
    config.write_text("[reconcile]\nworkers = 3\n", encoding="utf-8")
    env = {"DOCSYNC_SERVE_PORT": "9001", "DOCSYNC_SERVE_API_KEYS": "k" * 40}
    data = cli("config", "--config", config, "--table", "t-flag", env=env).json()

    rows = {row["name"]: row for row in data["settings"]}
    assert rows["table"] == {
        "name": "table",
        "value": "t-flag",
        "source": "flag",
        "from": "--table",
    }
    assert rows["serve.port"]["source"] == "env" and rows["serve.port"]["value"] == 9001
    assert rows["reconcile.workers"] == {
        "name": "reconcile.workers",
        "value": 3,
        "source": "file",
        "from": str(config),
    }
    assert rows["serve.api_keys"]["value"] == "********"
    assert "k" * 40 not in json.dumps(data)
    assert "serve.host" not in rows and data["defaults_hidden"] > 50  # defaults: --all
    every = cli("config", "--all", "--config", config).json()
    assert {"serve.host", "prefixes.change", "streams.window_s"} <= {
        row["name"] for row in every["settings"]
    }
    assert every["defaults_hidden"] == 0 and data["deprecations"] == []
